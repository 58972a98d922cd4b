from kasparro.cli import main

raise SystemExit(main())

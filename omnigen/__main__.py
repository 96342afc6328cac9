from omnigen.cli import main

raise SystemExit(main())

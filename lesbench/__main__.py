from lesbench.cli import main

raise SystemExit(main())

from abiscan.cli import main

raise SystemExit(main())

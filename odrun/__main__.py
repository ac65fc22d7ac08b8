from odrun.cli import main

main()

from orgscan.cli import main

main()

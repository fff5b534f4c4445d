from minik.cli.main import main

main()

import SheafCLI

SheafCommand.main()

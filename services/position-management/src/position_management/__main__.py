from position_management.main import main

main()

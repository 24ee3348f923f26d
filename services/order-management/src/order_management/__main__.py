from order_management.main import main

main()

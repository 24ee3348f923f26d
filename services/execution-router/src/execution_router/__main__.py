from execution_router.main import main

main()

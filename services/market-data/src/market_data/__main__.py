from market_data.main import main

main()

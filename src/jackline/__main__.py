from jackline.cli import main

main()

"""Small applications written for Motor, run on greenmotor by changing their import only."""

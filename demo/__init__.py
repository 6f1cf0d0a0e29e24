"""The greenmotor demo: a live message board on Tornado and greenmotor."""

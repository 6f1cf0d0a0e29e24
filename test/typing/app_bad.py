"""Code with type errors mypy must report (see test_typing.py)."""

from greenmotor import MotorClient, MotorDatabase

client = MotorClient("mongodb://localhost:27017")
db: MotorDatabase = client.app
count: int = client.app  # a MotorDatabase is not an int
MotorDatabase(client)  # the name argument is missing

"""Code with type errors mypy must report (see test_typing.py)."""

from typing import Any

from greenmotor import MotorClient, MotorCollection, MotorDatabase

client = MotorClient("mongodb://localhost:27017")
db: MotorDatabase = client.app
count: int = client.app  # a MotorDatabase is not an int
MotorDatabase(client)  # the name argument is missing
pages: MotorCollection[dict[str, Any]] = db.pages
pages.insert_one([{"a": 1}])  # a list is no document
pages.find().limit("10")  # limit takes an int
pages.insert_one({}, callback=print)  # fine: print takes two arguments
pages.update_one({}, {}, callback=len)  # callbacks take (result, error)

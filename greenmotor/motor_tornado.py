"""Drop-in for ``motor.motor_tornado``: ``import greenmotor.motor_tornado as motor_tornado``.

The same public names as Motor 3's Tornado module, backed by greenmotor's classes.
"""

from greenmotor.change_stream import MotorChangeStream
from greenmotor.client import MotorClient, MotorCollection, MotorDatabase
from greenmotor.cursor import MotorCommandCursor, MotorCursor, MotorLatentCommandCursor
from greenmotor.encryption import MotorClientEncryption
from greenmotor.gridfs import MotorGridFSBucket, MotorGridIn, MotorGridOut, MotorGridOutCursor
from greenmotor.session import MotorClientSession

__all__ = [
    "MotorChangeStream",
    "MotorClient",
    "MotorClientEncryption",
    "MotorClientSession",
    "MotorCollection",
    "MotorCommandCursor",
    "MotorCursor",
    "MotorDatabase",
    "MotorGridFSBucket",
    "MotorGridIn",
    "MotorGridOut",
    "MotorGridOutCursor",
    "MotorLatentCommandCursor",
]

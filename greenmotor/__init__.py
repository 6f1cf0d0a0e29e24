"""greenmotor: an asynchronous MongoDB driver for Tornado that runs PyMongo in greenlets.

Layout (imports go one way, down this list):

* :mod:`greenmotor.client`, :mod:`greenmotor.cursor`, ... - the public classes, declared
* :mod:`greenmotor.metaprogramming` - turns those declarations into methods
* :mod:`greenmotor.green_pool`, :mod:`greenmotor.green_socket` - PyMongo's waits made green
* :mod:`greenmotor.core` - the greenlet bridge itself
"""

from greenmotor.pymongo_check import check_pymongo

check_pymongo()

from greenmotor.change_stream import MotorChangeStream
from greenmotor.client import MotorClient, MotorCollection, MotorDatabase
from greenmotor.core import GreenmotorUsageError
from greenmotor.cursor import (
    MotorCommandCursor,
    MotorCursor,
    MotorLatentCommandCursor,
    MotorRawBatchCommandCursor,
    MotorRawBatchCursor,
)
from greenmotor.encryption import MotorClientEncryption
from greenmotor.gridfs import (
    MotorGridFSBucket,
    MotorGridIn,
    MotorGridOut,
    MotorGridOutCursor,
)
from greenmotor.metaprogramming import check_wrap_names
from greenmotor.session import MotorClientSession

check_wrap_names()  # every module's classes are declared: a wrap= typo fails here

from greenmotor._version import version

__version__ = version

__all__ = [
    "GreenmotorUsageError",
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
    "MotorRawBatchCommandCursor",
    "MotorRawBatchCursor",
    "version",
]

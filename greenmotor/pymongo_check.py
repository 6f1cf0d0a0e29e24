"""Fail at import, with a clear message, on a PyMongo greenmotor has not been tested with.

greenmotor hooks a few private PyMongo names (listed in :data:`HOOKED`). They move between
minor releases, so greenmotor pins the range it tests and checks every hook is still there.
"""

from __future__ import annotations

import importlib

import pymongo

SUPPORTED = (4, 20)
SUPPORTED_RANGE = "pymongo>=4.20,<4.21"

# module -> names greenmotor relies on there.
HOOKED = {
    "pymongo.synchronous.pool": ["Connection", "Pool", "_configured_socket_interface"],
    "pymongo.errors": ["_OperationCancelled"],
    "pymongo.pool_shared": [
        "_CancellationContext",
        "_get_ssl_session",
        "_get_timeout_details",
        "_raise_connection_failure",
        "_set_keepalive_times",
    ],
    "pymongo.network_layer": ["NetworkingInterface", "receive_data", "receive_message"],
    "pymongo.synchronous.mongo_client": ["MongoClient", "time"],
    "pymongo.synchronous.srv_resolver": ["_resolve"],
    "pymongo.synchronous.client_session": ["time"],
    "pymongo._csot": ["remaining"],
}


def check_pymongo() -> None:
    problems = []
    if tuple(pymongo.version_tuple[:2]) != SUPPORTED:
        problems.append(f"PyMongo {pymongo.version} is installed")
    for module_name, names in HOOKED.items():
        module = importlib.import_module(module_name)
        problems += [f"{module_name}.{n} is missing" for n in names if not hasattr(module, n)]
    if not problems:
        from pymongo.synchronous.pool import Pool

        # GreenPool swaps the socket factory Pool.connect looks up, and the two conditions
        # Pool.__init__ creates.
        if "_configured_socket_interface" not in Pool.connect.__code__.co_names:
            problems.append("Pool.connect no longer calls _configured_socket_interface")
        if not {"size_cond", "_max_connecting_cond"} <= set(Pool.__init__.__code__.co_names):
            problems.append("Pool.__init__ no longer creates size_cond/_max_connecting_cond")
        from pymongo import network_layer
        from pymongo.synchronous.pool import Connection

        # GreenConnection swaps the receive_message and receive_data these look up.
        if "Connection" not in Pool.connect.__code__.co_names:
            problems.append("Pool.connect no longer creates Connection")
        if "receive_message" not in Connection.receive_message.__code__.co_names:
            problems.append("Connection.receive_message no longer calls receive_message")
        if "receive_data" not in network_layer.receive_message.__code__.co_names:
            problems.append("network_layer.receive_message no longer calls receive_data")
        # GreenMongoClient opens SRV clients off the loop, keyed on these.
        if not {"_opened", "_resolve_srv_info"} <= set(
            pymongo.MongoClient._get_topology.__code__.co_names
        ):
            problems.append("MongoClient._get_topology no longer checks _opened/_resolve_srv_info")
        if "_condition_class" not in pymongo.MongoClient.__init__.__code__.co_consts:
            problems.append("MongoClient no longer accepts _condition_class")
    if problems:
        raise ImportError(
            f"greenmotor supports {SUPPORTED_RANGE}, but: {'; '.join(problems)}. "
            f"Install a supported PyMongo: pip install '{SUPPORTED_RANGE}'"
        )

"""The endpoints of the sign-in methods' own folders (their enrolment, their options):
a method's package may hold a `routes` module with a `router`, included by the app."""

from __future__ import annotations

import importlib
import importlib.util

from fastapi import APIRouter

from app.signin.methods import METHODS


def method_routers() -> list[APIRouter]:
    routers = []
    for method in METHODS:
        package = method.__module__.rpartition(".")[0]
        if importlib.util.find_spec(f"{package}.routes") is None:
            continue
        router = importlib.import_module(f"{package}.routes").router
        assert isinstance(router, APIRouter), f"{package}.routes.router"
        routers.append(router)
    return routers

"""The fastapi-users peer: the stack ADR-004 was first written for.

The app of fastapi-users' "full example" (SQLAlchemy + aiosqlite user table, register, login,
/users/me), with one authentication backend chosen by FAU_STRATEGY:
  jwt    JWTStrategy (HS256, 15 min) with BearerTransport
  redis  RedisStrategy (opaque token looked up in Redis) with BearerTransport
Passwords: fastapi-users' PasswordHelper over pwdlib's Argon2Hasher (argon2-cffi), with the
same argon2id parameters as gatehouse's defaults (m=19456 KiB, t=2, p=1) so that logins
compare like for like. Served by uvicorn as its docs recommend: `--workers 2 --loop uvloop
--http httptools` (run.py starts it), access log off like gatehouse's log level warn.

Environment: FAU_DB (sqlite file), FAU_STRATEGY, FAU_REDIS_URL, FAU_SECRET.
`python fastapi_users_app.py init` creates the table (once, before the workers start).
"""

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncGenerator

import redis.asyncio
from fastapi import Depends, FastAPI
from fastapi_users import BaseUserManager, FastAPIUsers, UUIDIDMixin, schemas
from fastapi_users.authentication import (
    AuthenticationBackend,
    BearerTransport,
    JWTStrategy,
    RedisStrategy,
)
from fastapi_users.db import SQLAlchemyBaseUserTableUUID, SQLAlchemyUserDatabase
from fastapi_users.password import PasswordHelper
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

DATABASE_URL = "sqlite+aiosqlite:///" + os.environ.get("FAU_DB", "fau.sqlite")
SECRET = os.environ.get("FAU_SECRET", "bench-secret-bench-secret-bench-secret-0123")
STRATEGY = os.environ.get("FAU_STRATEGY", "jwt")
REDIS_URL = os.environ.get("FAU_REDIS_URL", "redis://127.0.0.1:6379/1")


class Base(DeclarativeBase):
    pass


class User(SQLAlchemyBaseUserTableUUID, Base):
    pass


class UserRead(schemas.BaseUser[uuid.UUID]):
    pass


class UserCreate(schemas.BaseUserCreate):
    pass


engine = create_async_engine(DATABASE_URL)
async_session_maker = async_sessionmaker(engine, expire_on_commit=False)


async def get_async_session() -> AsyncGenerator[AsyncSession, None]:
    async with async_session_maker() as session:
        yield session


async def get_user_db(session: AsyncSession = Depends(get_async_session)):
    yield SQLAlchemyUserDatabase(session, User)


password_helper = PasswordHelper(
    PasswordHash((Argon2Hasher(time_cost=2, memory_cost=19456, parallelism=1),))
)


class UserManager(UUIDIDMixin, BaseUserManager[User, uuid.UUID]):
    reset_password_token_secret = SECRET
    verification_token_secret = SECRET


async def get_user_manager(user_db: SQLAlchemyUserDatabase = Depends(get_user_db)):
    yield UserManager(user_db, password_helper)


bearer_transport = BearerTransport(tokenUrl="auth/login")
redis_client = redis.asyncio.from_url(REDIS_URL, decode_responses=True)


def get_jwt_strategy() -> JWTStrategy:
    return JWTStrategy(secret=SECRET, lifetime_seconds=900)


def get_redis_strategy() -> RedisStrategy:
    return RedisStrategy(redis_client, lifetime_seconds=900)


auth_backend = AuthenticationBackend(
    name=STRATEGY,
    transport=bearer_transport,
    get_strategy=get_redis_strategy if STRATEGY == "redis" else get_jwt_strategy,
)

fastapi_users = FastAPIUsers[User, uuid.UUID](get_user_manager, [auth_backend])
current_active_user = fastapi_users.current_user(active=True)

app = FastAPI()
app.include_router(fastapi_users.get_auth_router(auth_backend), prefix="/auth", tags=["auth"])
app.include_router(
    fastapi_users.get_register_router(UserRead, UserCreate), prefix="/auth", tags=["auth"]
)
app.include_router(
    fastapi_users.get_users_router(UserRead, schemas.BaseUserUpdate), prefix="/users", tags=["users"]
)


@app.get("/healthz")
async def healthz():
    return {"ok": True}


async def create_db_and_tables():
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)


if __name__ == "__main__" and sys.argv[1:] == ["init"]:
    asyncio.run(create_db_and_tables())

"""A real SMTP server for tests/email.rs (aiosmtpd on 127.0.0.1).

    python3 tests/smtp_sink.py DIR [PORT]

Prints "READY <port>" once it listens. Every message it accepts is written to
DIR/<n>.json: the envelope, the headers and the decoded text and HTML parts. Each DATA first
reads DIR/script: if it has lines, the first is taken off and sent as the answer (e.g.
"451 4.3.0 Try again later" or "550 5.1.1 No such user"), or "SLEEP <seconds>" takes the
message and then holds the answer that long (creating DIR/holding); without a line, the
message is accepted with "250 2.0.0 Queued".
"""

import asyncio
import email
import email.policy
import json
import os
import sys

from aiosmtpd.smtp import SMTP


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    def scripted(self):
        path = os.path.join(self.directory, "script")
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return None
        lines = [line for line in lines if line.strip()]
        if not lines:
            return None
        with open(path, "w") as f:
            f.write("\n".join(lines[1:]) + ("\n" if lines[1:] else ""))
        return lines[0]

    async def handle_DATA(self, server, session, envelope):
        answer = self.scripted()
        if answer and not answer.startswith("SLEEP "):
            return answer
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        parts = {}
        for part in message.walk():
            kind = part.get_content_type()
            if kind in ("text/plain", "text/html") and kind not in parts:
                parts[kind] = part.get_content()
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "headers": {k: str(v) for k, v in message.items()},
            "text": parts.get("text/plain", ""),
            "html": parts.get("text/html", ""),
        }
        self.count += 1
        tmp = os.path.join(self.directory, f".{self.count}.json")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.directory, f"{self.count}.json"))
        if answer:
            # A relay that has the message but is slow to say so: DIR/holding tells the
            # test; a client that gives up (or dies) now leaves it delivered all the same.
            open(os.path.join(self.directory, "holding"), "w").close()
            await asyncio.sleep(float(answer.split()[1]))
        return "250 2.0.0 Queued"


async def main():
    directory = sys.argv[1]
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    handler = Sink(directory)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="sink.test"), "127.0.0.1", port
    )
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())

#!/usr/bin/env python3
"""TLS in front of the emulator, for bench/run's HTTPS row: terminates TLS on 127.0.0.1 with the
emulator test certificate (testdata/emulator-tls, trusted by the test flavour only) and pipes bytes to
the emulator's plain HTTP port. Prints "https://127.0.0.1:PORT" once listening.
Usage: tls_front.py UPSTREAM_PORT CERT KEY"""
import asyncio
import ssl
import sys


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def main():
    upstream, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)

    async def handle(reader, writer):
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", upstream)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, uw), pipe(ur, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    print(f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())

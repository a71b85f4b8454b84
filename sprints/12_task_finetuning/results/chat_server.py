"""A chat web page for a GPT: type a message, watch the answer appear token by token.

    uv run python -m sprints.12_task_finetuning.results.chat_server \\
        --checkpoint runs/instruct_chat/model.pt --port 8000

Start it with ``--checkpoint PATH`` (any checkpoint ``generate.load_from_checkpoint`` reads:
those of train_gpt2.py, finetune.py and this sprint's instruct.py, best one trained with
``instruct.py --format chat --out-dir runs/instruct_chat`` so that it knows the template) or
with ``--init-from DIR`` (a Hugging Face GPT-2 directory), then open http://127.0.0.1:8000/ in a
browser. The page keeps the conversation and sends all of it with every message; the server
renders it with the chat template (``prompts.chat_prompt``), keeps the latest turns that fit
in the model's context window next to room for the answer, and streams the answer back as
server-sent events until the model writes ``<|endoftext|>`` or ``max_tokens`` is reached. The
temperature (0 = greedy), top-k, top-p and max-tokens fields set the sampling; the stop button
aborts the request, and the server stops generating as soon as it sees the disconnect. It
listens on 127.0.0.1 only unless ``--host`` says otherwise (there is no authentication).

The HTTP API, for scripts and tests:

- ``GET /``: the page (chat_page.html next to this file).
- ``GET /api/info``: the model's config, parameter count, tokenizer, block size and the
  largest ``max_tokens`` a request may ask for.
- ``GET /api/health``: ``{"status": "ok", "active": ..., "completed": ..., "stopped": ...,
  "last": {...}}``: how many answers are streaming now, how many ended and how.
- ``POST /api/chat`` with ``{"messages": [{"role": "user", "content": "Hi"}], "temperature":
  0.8, "top_k": 50, "top_p": 0.95, "max_tokens": 100, "seed": null}`` answers with a
  ``text/event-stream``: one ``start`` event (prompt size, how many early messages were
  dropped to fit), ``token`` events ``{"text": "..."}`` whose texts concatenate to the answer,
  and one ``done`` event (``reason``: ``"eos"`` or ``"max_tokens"``, token count, speed). A
  bad request gets a 4xx JSON ``{"error": "what was wrong"}`` before any stream starts.

Concurrency. Each request gets its own Python generator (``generation.generate``), its own KV
cache, random generator and UTF-8 streamer; the model is shared and only read (inference
mode). Every generation step (one forward pass) runs in a worker thread while holding one
``threading.Lock``: the streams of two browsers interleave token by token, so both see their
answers grow at once, and the two CPU cores are never asked to run two forward passes at the
same time (which would only make each slower, with both competing for the same cores and
torch's thread pool). A lock held for a whole answer would instead make the second person
wait for the first answer to finish. ``--max-streams`` caps the answers in flight (each holds
a KV cache); a request beyond it gets a 503 and can retry.
"""

from __future__ import annotations

import argparse
import json
import secrets
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from importlib import import_module
from pathlib import Path
from typing import Any, Literal

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import prompts

_devices = import_module("sprints.01_setup_and_basics.results.devices")
_arg_types = import_module("sprints.01_setup_and_basics.results.arg_types")

PAGE = Path(__file__).with_name("chat_page.html")
MAX_MESSAGE_CHARS = 8000  # per message: a cheap bound before anything is tokenized
MAX_MESSAGES = 200
DEFAULT_MAX_TOKENS = 100


# ----- the request ---------------------------------------------------------------------------
class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant"]
    content: str = Field(max_length=MAX_MESSAGE_CHARS)


class ChatRequest(BaseModel):
    """What the page sends: the whole conversation (ending with the user's new message) and
    the sampling settings. pydantic checks types and ranges; ``ChatService`` checks what
    depends on the model (max_tokens against the block size, the prompt's length)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt "temprature" is an error, not ignored
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    temperature: float = Field(0.8, ge=0.0, allow_inf_nan=False)  # 0 means greedy
    top_k: int | None = Field(50, ge=1)  # null: no top-k filter
    top_p: float | None = Field(0.95, gt=0.0, le=1.0, allow_inf_nan=False)  # null: no filter
    max_tokens: int = Field(DEFAULT_MAX_TOKENS, ge=1)
    seed: int | None = Field(None, ge=0, lt=2**63)  # null: a fresh random seed per answer


class ChatError(Exception):
    """A request the server refuses: answered as ``{"error": message}`` with this status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def sse(event: str, data: dict[str, Any]) -> str:
    """One server-sent event. The data is JSON, so a token holding newlines cannot break the
    ``data:`` line format (an event ends at the first blank line)."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


# ----- the model side ------------------------------------------------------------------------
class ChatService:
    """Renders a conversation into prompt ids and streams one answer per request.

    ``generate_fn`` is ``generation.generate`` or a wrapper of it with the same arguments
    (the tests slow it down so that a person, or Playwright, can press stop mid-answer).
    """

    def __init__(self, model, tokenizer, max_streams: int = 4,
                 generate_fn: Callable | None = None, source: str = "") -> None:
        import torch

        self._torch = torch
        self._generation = import_module("sprints.10_pretrained_and_generation.results.generation")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.generate_fn = generate_fn or self._generation.generate
        self.block_size = model.config.block_size
        self.device = next(model.parameters()).device
        self.eot = getattr(tokenizer, "eot_token_id", None)
        # The prompt needs at least one token next to the answer.
        self.max_tokens_limit = self.block_size - 1
        self.max_streams = max_streams
        self.source = source
        self.step_lock = threading.Lock()  # one forward pass at a time (see module doc)
        self.active = 0
        self.completed = 0
        self.stopped = 0
        self.last: dict[str, Any] | None = None

    def info(self) -> dict[str, Any]:
        config = self.model.config
        return {
            "model": config.to_dict(),
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "tokenizer": getattr(self.tokenizer, "name", type(self.tokenizer).__name__),
            "eot_token_id": self.eot,
            "block_size": self.block_size,
            "max_tokens_limit": self.max_tokens_limit,
            "max_streams": self.max_streams,
            "device": str(self.device),
            "source": self.source,
            "defaults": {name: field.default for name, field in ChatRequest.model_fields.items()
                         if name != "messages"},
        }

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "active": self.active, "completed": self.completed,
                "stopped": self.stopped, "last": self.last}

    def prompt_ids(self, messages: list[dict[str, str]], max_tokens: int) -> tuple[list[int], int]:
        """(ids, dropped): the chat-template prompt of the latest messages that fit in
        ``block_size - max_tokens`` tokens, and how many early messages were left out.

        The kept part always starts at a user message (never with an orphan answer); the
        system line that chat_prompt puts first is always kept. The scan goes backwards from
        the newest user message and stops at the first start that no longer fits: adding
        earlier messages only makes the prompt longer.
        """
        budget = self.block_size - max_tokens
        best: tuple[list[int], int] | None = None
        needed = None
        for start in range(len(messages) - 1, -1, -1):
            if messages[start]["role"] != "user":
                continue
            try:
                ids = self.tokenizer.encode(prompts.chat_prompt(messages[start:]))
            except ValueError as error:  # e.g. a character a char vocabulary never saw
                raise ChatError(422, f"the conversation cannot be encoded with this model's "
                                     f"tokenizer: {error}") from None
            if len(ids) > budget:
                needed = len(ids)
                break
            best = (ids, start)
        if best is None:
            raise ChatError(
                422,
                f"the last message is too long: with the chat template it takes {needed} "
                f"tokens, and this model's context of {self.block_size} tokens minus "
                f"max_tokens={max_tokens} leaves {budget}; shorten the message or lower "
                "max_tokens",
            )
        ids, start = best
        if max(ids) >= self.model.config.vocab_size:
            raise ChatError(422, "the prompt has token ids beyond the model's vocabulary")
        return ids, start

    def check(self, request: ChatRequest) -> tuple[list[int], int]:
        """The checks that need the model; returns prompt_ids' (ids, dropped)."""
        if not 1 <= request.max_tokens <= self.max_tokens_limit:
            raise ChatError(422, f"max_tokens must be in 1..{self.max_tokens_limit} for this "
                                 f"model (context {self.block_size} tokens), got "
                                 f"{request.max_tokens}")
        messages = [m.model_dump() for m in request.messages]
        for i, message in enumerate(messages):
            if message["role"] == "user" and not message["content"].strip():
                raise ChatError(422, f"messages[{i}]: the message is empty; type something")
        if messages[-1]["role"] != "user":
            raise ChatError(422, "the last message must be the user's (the model answers it)")
        return self.prompt_ids(messages, request.max_tokens)

    async def stream(self, request: ChatRequest, ids: list[int], dropped: int,
                     http_request: Request) -> AsyncIterator[str]:
        """The answer as server-sent events. Each step runs in a worker thread (a forward
        pass must not block the event loop, which serves the other streams); a client that
        disconnects cancels this generator at its next ``await``, and ``finally`` closes the
        token generator: nothing more is computed for it."""
        torch = self._torch
        idx = torch.tensor([ids], dtype=torch.long, device=self.device)  # (1, T)
        seed = request.seed if request.seed is not None else secrets.randbits(63)
        generator = torch.Generator(device=self.device).manual_seed(seed)
        tokens = self.generate_fn(
            self.model, idx, request.max_tokens,
            temperature=request.temperature, top_k=request.top_k, top_p=request.top_p,
            greedy=request.temperature == 0, generator=generator, eos_token_id=self.eot,
            allowed_tokens=getattr(self.tokenizer, "vocab_size", None),
        )
        streamer = self._generation.TextStreamer(self.tokenizer.decode)

        def step() -> tuple[int | None, str]:
            with self.step_lock:
                token = next(tokens, None)
            if token is None:
                return None, streamer.flush()
            token = int(token[0])
            if token == self.eot:
                return token, streamer.flush()  # the end marker itself is not shown
            return token, streamer.push(token)

        count, reason, start = 0, "stopped", time.perf_counter()
        try:
            yield sse("start", {"prompt_tokens": len(ids), "dropped_messages": dropped,
                                "seed": seed})
            while True:
                if await http_request.is_disconnected():
                    break
                token, piece = await anyio.to_thread.run_sync(step)
                if token is not None and token != self.eot:
                    count += 1
                if piece:
                    yield sse("token", {"text": piece})
                if token is None or token == self.eot or count >= request.max_tokens:
                    if token is not None and token != self.eot:
                        tail = streamer.flush()  # a character cut by max_tokens
                        if tail:
                            yield sse("token", {"text": tail})
                    reason = "eos" if token == self.eot else "max_tokens"
                    break
            if reason != "stopped":
                seconds = time.perf_counter() - start
                yield sse("done", {"reason": reason, "tokens": count, "seconds": seconds,
                                   "tokens_per_s": count / max(seconds, 1e-9)})
        except Exception as error:  # reported to the page, then raised (uvicorn logs it)
            reason = "error"
            yield sse("error", {"error": f"generation failed: {error}"})
            raise
        finally:
            tokens.close()  # suspended at a yield (the step finished): nothing runs any more
            if reason == "stopped":
                self.stopped += 1
            else:
                self.completed += 1
            self.last = {"reason": reason, "tokens": count, "max_tokens": request.max_tokens}


class _Stream(StreamingResponse):
    """A streamed response that frees its slot in ``max_streams`` however it ends: done,
    disconnected, or cancelled before the first byte (the body generator's own ``finally``
    would not run if it never started)."""

    def __init__(self, content, release: Callable[[], None]) -> None:
        super().__init__(content, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._release = release

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


def _validation_message(errors: list[dict[str, Any]]) -> str:
    parts = []
    for error in errors:
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        parts.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
    return "; ".join(parts)


def create_app(model, tokenizer, max_streams: int = 4, generate_fn: Callable | None = None,
               source: str = "") -> FastAPI:
    """The FastAPI application serving ``model`` (see the module doc for its routes)."""
    service = ChatService(model, tokenizer, max_streams, generate_fn, source)
    page = PAGE.read_text(encoding="utf-8")
    app = FastAPI(title="GPT chat", docs_url=None, redoc_url=None)
    app.state.service = service

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return JSONResponse({"error": "the request body is not valid JSON: send an object "
                                          "like {\"messages\": [{\"role\": \"user\", "
                                          "\"content\": \"Hi\"}]}"}, status_code=400)
        return JSONResponse({"error": _validation_message(errors)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/api/info")
    async def info() -> dict[str, Any]:
        return service.info()

    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        return service.health()

    @app.post("/api/chat")
    async def chat(body: ChatRequest, request: Request):
        try:
            ids, dropped = service.check(body)
        except ChatError as error:
            return JSONResponse({"error": error.message}, status_code=error.status)
        if service.active >= service.max_streams:
            return JSONResponse(
                {"error": f"busy: {service.active} answers are streaming (the server allows "
                          f"--max-streams {service.max_streams}); try again in a moment"},
                status_code=503)
        service.active += 1  # the event loop is one thread: no race between check and count

        def release() -> None:
            service.active -= 1

        return _Stream(service.stream(body, ids, dropped, request), release)

    return app


# ----- the command line ----------------------------------------------------------------------
def _port(text: str) -> int:
    value = _arg_types.non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is at most 65535, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Serve a chat web page: the answer streams in token by token, with "
                    "temperature/top-k/top-p/max-tokens controls and a stop button.",
        epilog="Then open http://HOST:PORT/ in a browser (Ctrl+C stops the server).",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a checkpoint of train_gpt2.py, finetune.py or the "
                                             "instruction tuning (e.g. runs/.../best.pt)")
    source.add_argument("--init-from", help="a local Hugging Face GPT-2 directory "
                                            "(config.json + model.safetensors), or a hub name")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; "
                             "0.0.0.0 opens it to the network, with no authentication)")
    parser.add_argument("--port", type=_port, default=8000, help="default 8000; 0 = any free")
    parser.add_argument("--device", choices=_devices.DEVICE_CHOICES, default="auto",
                        help="auto takes cuda, then mps, then cpu")
    parser.add_argument("--max-streams", type=_arg_types.positive_int, default=4,
                        help="answers streaming at once; more get HTTP 503 (default 4)")
    parser.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"],
                        default="info", help="uvicorn's log level (info logs every request)")
    return parser


def listen(host: str, port: int) -> socket.socket:
    """A bound, listening socket: a taken port is reported before the model is loaded."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {error.strerror or error}; "
                      "pick another --port (or stop what uses it)") from None
    sock.listen(128)
    return sock


def serve(app: FastAPI, sock: socket.socket, log_level: str) -> None:
    """Run uvicorn on the already bound socket until Ctrl+C."""
    import uvicorn

    uvicorn.Server(uvicorn.Config(app, log_level=log_level)).run(sockets=[sock])


def load_model(args: argparse.Namespace):
    """(model, tokenizer, source) through sprint 10's loaders (they check the weights)."""
    generate = import_module("sprints.10_pretrained_and_generation.results.generate")
    if args.checkpoint is not None:
        if not Path(args.checkpoint).is_file():
            raise FileNotFoundError(
                f"--checkpoint: no file {args.checkpoint}; pass a checkpoint written by "
                "train_gpt2.py, finetune.py or the instruction tuning (e.g. runs/.../best.pt)")
        model, tokenizer = generate.load_from_checkpoint(args.checkpoint)
        return model, tokenizer, args.checkpoint
    model, tokenizer = generate.load_from_pretrained(args.init_from)
    return model, tokenizer, args.init_from


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        device = _devices.pick_device(args.device)
    except _devices.DeviceError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    try:
        sock = listen(args.host, args.port)
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    try:
        model, tokenizer, source = load_model(args)
    except (OSError, ValueError, RuntimeError, KeyError) as error:
        sock.close()
        print(f"error: cannot load the model: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    model = model.to(device).eval()
    app = create_app(model, tokenizer, max_streams=args.max_streams, source=source)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    config = model.config
    n_params = sum(p.numel() for p in model.parameters())
    print(f"# {source}: {config.n_layer} layers, width {config.n_embd}, context "
          f"{config.block_size}, {n_params:,} parameters on {device}", file=sys.stderr)
    print(f"chat page: http://{shown}:{port}/  (Ctrl+C stops)", file=sys.stderr, flush=True)
    serve(app, sock, args.log_level)


if __name__ == "__main__":
    main()

"""Sprint 12's chat server (chat_server.py) and its page (chat_page.html).

A tiny random GPT with GPT-2's tokenizer stands in for a trained model. The references:

- ``generation.generate`` run greedily on ``prompts.chat_prompt(messages)`` and decoded in
  one piece with the tokenizer: the streamed events must reassemble to exactly that text;
- a model that is *made* to write <|endoftext|> after k tokens (the embedding rows of its
  (k+1)-th greedy token and of <|endoftext|> swapped; the embedding is tied to the output
  layer, so the logit that token had now belongs to <|endoftext|>);
- a real uvicorn server on a free 127.0.0.1 port with real httpx clients for the
  concurrent streams and the disconnect, and Debian's Chromium driven by Playwright for the
  page (skipped, with the reason, only where no Chromium is installed).
"""

import json
import shutil
import socket
import struct
import threading
import time
import zlib
from importlib import import_module
from pathlib import Path

import httpx
import pytest
import torch
import uvicorn
from fastapi.testclient import TestClient

chat_server = import_module("sprints.12_task_finetuning.results.chat_server")
prompts = import_module("sprints.12_task_finetuning.results.prompts")
generation = import_module("sprints.10_pretrained_and_generation.results.generation")
generate_mod = import_module("sprints.10_pretrained_and_generation.results.generate")
model_mod = import_module("sprints.08_gpt2_assembly.results.model")
config_mod = import_module("sprints.08_gpt2_assembly.results.config")
utils_mod = import_module("sprints.08_gpt2_assembly.results.utils")

EOT = 50256
BLOCK = 256
HELLO = [{"role": "user", "content": "Hello, who are you?"}]
STEP_DELAY = 0.01  # seconds per token on the real server: long enough to press stop


def chromium_path() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


CHROMIUM = chromium_path()
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


# ----- models and references ------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    config = config_mod.GPTConfig(vocab_size=50257, block_size=BLOCK, n_layer=1, n_head=2,
                                  n_embd=32)
    model = model_mod.GPT(config)
    with torch.no_grad():  # GPT-2's small init makes a random model repeat one token forever;
        for param in model.parameters():  # large weights make its greedy answers varied
            param.normal_(0.0, 1.0)
    path = tmp_path_factory.mktemp("chat") / "tiny.pt"
    utils_mod.save_checkpoint(path, model=model.state_dict(), config=config.to_dict(), step=0,
                              extra={"tokenizer": {"type": "gpt2"}})
    return path


@pytest.fixture(scope="module")
def loaded(checkpoint):
    """(model, tokenizer) read back the way the server's --checkpoint reads them."""
    model, tokenizer = generate_mod.load_from_checkpoint(str(checkpoint))
    return model.eval(), tokenizer


def reference(model, tokenizer, messages, max_tokens) -> tuple[str, list[int]]:
    """Greedy generation on the chat-template prompt, decoded in one piece (EOT left out)."""
    ids = tokenizer.encode(prompts.chat_prompt(messages))
    out = [int(t[0]) for t in generation.generate(model, torch.tensor([ids]), max_tokens,
                                                  greedy=True, eos_token_id=EOT)]
    return tokenizer.decode([t for t in out if t != EOT]), out


@pytest.fixture(scope="module")
def stopper(loaded):
    """(model, k): a copy of the tiny model whose greedy answer to HELLO is its first k
    tokens, then <|endoftext|>."""
    model, tokenizer = loaded
    prompt = set(tokenizer.encode(prompts.chat_prompt(HELLO)))
    _, seq = reference(model, tokenizer, HELLO, 40)
    assert EOT not in seq
    k = next(i for i in range(3, len(seq)) if seq[i] not in seq[:i] and seq[i] not in prompt)
    swapped = model_mod.GPT(model.config)
    swapped.load_state_dict(model.state_dict())
    with torch.no_grad():
        wte = swapped.transformer.wte.weight  # the output layer's weight too (tied)
        assert wte.data_ptr() == swapped.lm_head.weight.data_ptr()
        wte[[seq[k], EOT]] = wte[[EOT, seq[k]]].clone()
    return swapped.eval(), k, seq


def parse_sse(text: str) -> list[tuple[str, dict]]:
    """Server-sent events -> [(event, data)], read the way the format says (blank-line
    separated blocks of "field: value" lines)."""
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def answer_of(events) -> str:
    return "".join(data["text"] for event, data in events if event == "token")


@pytest.fixture(scope="module")
def client(loaded):
    model, tokenizer = loaded
    with TestClient(chat_server.create_app(model, tokenizer, source="tiny.pt")) as test_client:
        yield test_client


def chat(client, **body) -> httpx.Response:
    body.setdefault("messages", HELLO)
    return client.post("/api/chat", json=body)


# ----- the HTTP API ---------------------------------------------------------------------------
def test_stream_reassembles_to_the_greedy_reference(client, loaded):
    model, tokenizer = loaded
    response = chat(client, temperature=0, max_tokens=40)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    expected, tokens = reference(model, tokenizer, HELLO, 40)
    assert EOT not in tokens  # so the answer runs to max_tokens
    assert events[0] == ("start", {"prompt_tokens": len(tokenizer.encode(
        prompts.chat_prompt(HELLO))), "dropped_messages": 0, "seed": events[0][1]["seed"]})
    assert answer_of(events) == expected
    assert sum(event == "token" for event, _ in events) >= 30  # streamed, not one blob
    assert events[-1][0] == "done"
    assert events[-1][1]["reason"] == "max_tokens" and events[-1][1]["tokens"] == 40

    # A conversation: earlier turns are part of the prompt, as chat_prompt renders them.
    talk = HELLO + [{"role": "assistant", "content": "I am a tiny model."},
                    {"role": "user", "content": "Tell me more 🙂"}]
    events = parse_sse(chat(client, messages=talk, temperature=0, max_tokens=25).text)
    assert answer_of(events) == reference(model, tokenizer, talk, 25)[0]


def test_sampling_settings_reach_the_sampler(client, loaded):
    """With a seed, a sampled answer is the one generation.generate draws with the same
    settings and a generator seeded the same way."""
    model, tokenizer = loaded
    settings = {"temperature": 1.3, "top_k": 20, "top_p": 0.9}
    events = parse_sse(chat(client, max_tokens=30, seed=7, **settings).text)
    ids = tokenizer.encode(prompts.chat_prompt(HELLO))
    out = [int(t[0]) for t in generation.generate(
        model, torch.tensor([ids]), 30, generator=torch.Generator().manual_seed(7),
        eos_token_id=EOT, **settings)]
    assert answer_of(events) == tokenizer.decode([t for t in out if t != EOT])
    assert answer_of(events) != reference(model, tokenizer, HELLO, 30)[0]  # not greedy


def test_generation_stops_at_endoftext(stopper, loaded):
    swapped, k, seq = stopper
    tokenizer = loaded[1]
    with TestClient(chat_server.create_app(swapped, tokenizer)) as test_client:
        events = parse_sse(chat(test_client, temperature=0, max_tokens=40).text)
    assert events[-1][0] == "done"
    assert events[-1][1]["reason"] == "eos" and events[-1][1]["tokens"] == k
    assert answer_of(events) == tokenizer.decode(seq[:k])  # the tokens before <|endoftext|>
    assert "<|endoftext|>" not in answer_of(events)


def test_prompt_keeps_the_latest_turns_that_fit(client, loaded):
    model, tokenizer = loaded
    turn = "one two three four five six seven eight nine ten " * 3  # about 30 tokens
    talk = []
    for i in range(6):
        talk += [{"role": "user", "content": f"Question {i}: {turn}"},
                 {"role": "assistant", "content": f"Answer {i}: {turn}"}]
    talk.append({"role": "user", "content": "And now?"})
    max_tokens = 60
    full = len(tokenizer.encode(prompts.chat_prompt(talk)))
    assert full > BLOCK - max_tokens  # the whole conversation does not fit
    # Independent of the server's scan: the first user message from which the rest fits.
    start = min(i for i in range(0, len(talk), 2)
                if len(tokenizer.encode(prompts.chat_prompt(talk[i:]))) <= BLOCK - max_tokens)
    assert 0 < start < len(talk) - 1
    events = parse_sse(chat(client, messages=talk, temperature=0, max_tokens=max_tokens).text)
    assert events[0][1]["dropped_messages"] == start
    assert events[0][1]["prompt_tokens"] == len(tokenizer.encode(
        prompts.chat_prompt(talk[start:])))
    assert answer_of(events) == reference(model, tokenizer, talk[start:], max_tokens)[0]


HELLO_JSON = json.dumps(HELLO)
BAD_REQUESTS = {
    "empty message": ({"messages": [{"role": "user", "content": "  \n"}]}, 422, "empty"),
    "no messages": ({"messages": []}, 422, "messages"),
    "no body fields": ({}, 422, "messages: Field required"),
    "message over 8000 characters": (
        {"messages": [{"role": "user", "content": "a" * 8001}]}, 422, "8000"),
    "message over the context": (
        {"messages": [{"role": "user", "content": "hello " * 300}]}, 422, "too long"),
    "negative temperature": ({"temperature": -0.5}, 422, "temperature"),
    "temperature not a number": ({"temperature": "hot"}, 422, "temperature"),
    "top_p 0": ({"top_p": 0}, 422, "top_p"),
    "top_p above 1": ({"top_p": 1.5}, 422, "top_p"),
    "top_k 0": ({"top_k": 0}, 422, "top_k"),
    "top_k not an integer": ({"top_k": 2.5}, 422, "top_k"),
    "max_tokens 0": ({"max_tokens": 0}, 422, "max_tokens"),
    "max_tokens over the context": ({"max_tokens": BLOCK}, 422, f"1..{BLOCK - 1}"),
    "unknown role": ({"messages": [{"role": "system", "content": "hi"}]}, 422, "role"),
    "last message not the user's": (
        {"messages": HELLO + [{"role": "assistant", "content": "hi"}]}, 422, "user's"),
    "misspelt field": ({"temprature": 0.5}, 422, "temprature"),
    "messages not a list": ({"messages": "hi"}, 422, "messages"),
    "not JSON": ('{"messages": [', 400, "not valid JSON"),
    "JSON, not an object": ("[1, 2]", 422, "object"),
    "NaN temperature": (f'{{"messages": {HELLO_JSON}, "temperature": NaN}}', 422,
                        "temperature"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_request_gets_a_clear_4xx_json_error(client, case):
    body, status, words = BAD_REQUESTS[case]
    if isinstance(body, str):
        response = client.post("/api/chat", content=body,
                               headers={"Content-Type": "application/json"})
    else:
        if "messages" not in body and case != "no body fields":
            body = {"messages": HELLO, **body}
        response = client.post("/api/chat", json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert words.lower() in response.json()["error"].lower()
    # ... and the server goes on serving.
    good = parse_sse(chat(client, temperature=0, max_tokens=2).text)
    assert good[-1][0] == "done" and good[-1][1]["tokens"] == 2


def test_info_health_page_and_unknown_paths(client, loaded):
    info = client.get("/api/info").json()
    assert info["model"] == loaded[0].config.to_dict()
    assert info["parameters"] == sum(p.numel() for p in loaded[0].parameters())
    assert info["block_size"] == BLOCK and info["max_tokens_limit"] == BLOCK - 1
    assert info["eot_token_id"] == EOT and info["defaults"]["max_tokens"] == 100
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["active"] == 0
    page = client.get("/")
    assert page.headers["content-type"].startswith("text/html")
    for element in ('id="send"', 'id="stop"', 'id="temperature"', 'id="top-k"', 'id="top-p"',
                    'id="max-tokens"', "AbortController"):
        assert element in page.text
    missing = client.get("/api/nothing")
    assert missing.status_code == 404 and "error" in missing.json()


# ----- a real server ---------------------------------------------------------------------------
def slow_generate(delay: float):
    """generation.generate, a pause after each token (the same tokens, only later)."""
    def generate(*args, **kwargs):
        for token in generation.generate(*args, **kwargs):
            time.sleep(delay)
            yield token
    return generate


class Server:
    """uvicorn in a thread on a free 127.0.0.1 port (bound first: no race for the port)."""

    def __init__(self, app) -> None:
        sock = chat_server.listen("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning",
                                                    timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]},
                                       daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)

    def health(self) -> dict:
        return httpx.get(self.url + "/api/health").json()

    def wait_idle(self, timeout: float = 5.0) -> dict:
        deadline = time.monotonic() + timeout
        while (health := self.health())["active"] and time.monotonic() < deadline:
            time.sleep(0.02)
        return health

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def server(loaded):
    model, tokenizer = loaded
    app = chat_server.create_app(model, tokenizer, max_streams=2,
                                 generate_fn=slow_generate(STEP_DELAY), source="tiny.pt")
    running = Server(app)
    yield running
    running.close()


def stream_events(url: str, body: dict, first_token: threading.Event | None = None):
    """[(event, data, arrival time)] of one streamed answer, read line by line as it comes."""
    events, block = [], []
    with httpx.Client(timeout=30) as http, http.stream("POST", url + "/api/chat",
                                                       json=body) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line:
                block.append(line)
                continue
            event, data = parse_sse("\n".join(block))[0]
            block = []
            events.append((event, data, time.monotonic()))
            if event == "token" and first_token is not None:
                first_token.set()
    return events


def test_two_concurrent_streams_each_get_their_own_answer(server, loaded):
    model, tokenizer = loaded
    talks = [HELLO, [{"role": "user", "content": "What is the capital of France?"}]]
    expected = [reference(model, tokenizer, talk, 40)[0] for talk in talks]
    assert expected[0] != expected[1]
    results, started = [None, None], [threading.Event(), threading.Event()]

    def run(i):
        results[i] = stream_events(server.url, {"messages": talks[i], "temperature": 0,
                                                "max_tokens": 40}, started[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    assert all(event.wait(10) for event in started)
    # Both streams hold the two slots of --max-streams 2: a third request is turned away.
    busy = httpx.post(server.url + "/api/chat", json={"messages": HELLO, "max_tokens": 2})
    assert busy.status_code == 503 and "busy" in busy.json()["error"]
    for thread in threads:
        thread.join(30)
    for events, text in zip(results, expected, strict=True):
        assert answer_of([(e, d) for e, d, _ in events]) == text
        assert events[-1][0] == "done" and events[-1][1]["tokens"] == 40
    # The answers were generated side by side (token by token), not one after the other.
    times = [[t for e, _, t in events if e == "token"] for events in results]
    assert times[0][0] < times[1][-1] and times[1][0] < times[0][-1]
    assert server.wait_idle()["active"] == 0
    ok = stream_events(server.url, {"messages": HELLO, "temperature": 0, "max_tokens": 3})
    assert ok[-1][1]["tokens"] == 3


def test_server_stops_generating_when_the_client_disconnects(server):
    before = server.wait_idle()
    with httpx.Client(timeout=30) as http, http.stream(
            "POST", server.url + "/api/chat",
            json={"messages": HELLO, "max_tokens": 200}) as response:
        for line in response.iter_lines():
            if line.startswith("event: token"):
                break  # the first token came: hang up
    health = server.wait_idle()
    assert health["active"] == 0
    assert health["stopped"] == before["stopped"] + 1
    assert health["last"]["reason"] == "stopped"
    # At STEP_DELAY per token the whole answer would take 2 s; it ended a few tokens in.
    assert health["last"]["tokens"] < 50


# ----- the command line -----------------------------------------------------------------------
def test_cli_errors_are_clear(tmp_path, capsys, checkpoint):
    with pytest.raises(SystemExit) as exit_info:
        chat_server.main(["--checkpoint", str(tmp_path / "missing.pt")])
    assert exit_info.value.code == 1
    assert "no file" in capsys.readouterr().err
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit) as exit_info:
        chat_server.main(["--checkpoint", str(garbage), "--port", "0"])
    assert exit_info.value.code == 1
    assert "error: cannot load the model" in capsys.readouterr().err
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        with pytest.raises(SystemExit) as exit_info:
            chat_server.main(["--checkpoint", str(checkpoint),
                              "--port", str(taken.getsockname()[1])])
    finally:
        taken.close()
    assert exit_info.value.code == 1
    assert "cannot listen on 127.0.0.1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        chat_server.main([])  # neither --checkpoint nor --init-from
    assert exit_info.value.code == 2


def test_cli_serves_the_checkpoint(monkeypatch, capsys, checkpoint, loaded):
    served = {}

    def fake_serve(app, sock, log_level):
        served.update(app=app, address=sock.getsockname(), log_level=log_level)
        sock.close()

    monkeypatch.setattr(chat_server, "serve", fake_serve)
    chat_server.main(["--checkpoint", str(checkpoint), "--port", "0", "--device", "cpu"])
    assert served["address"][0] == "127.0.0.1"  # --host's default: this machine only
    assert f":{served['address'][1]}/" in capsys.readouterr().err
    with TestClient(served["app"]) as test_client:
        assert test_client.get("/api/info").json()["model"] == loaded[0].config.to_dict()


# ----- the page in a real browser ---------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no Chromium found (neither `chromium` on PATH nor /usr/bin/chromium); "
                    "install it with `apt-get install chromium` to run the browser test")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is in the dev group: uv sync --all-groups")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_page(browser, server, temperature: str, max_tokens: str):
    page = browser.new_page(viewport={"width": 900, "height": 640})
    page.goto(server.url + "/")
    page.wait_for_function("document.getElementById('model-info').textContent"
                           ".includes('layers')")  # /api/info came back: its defaults are set
    page.fill("#temperature", temperature)
    page.fill("#max-tokens", max_tokens)
    # Every change of the last answer's length, as the page shows it.
    page.evaluate("""() => {
        window.lengths = [];
        new MutationObserver(() => {
            const answers = document.querySelectorAll('.msg.assistant');
            if (answers.length) window.lengths.push(answers[answers.length - 1]
                                                    .textContent.length);
        }).observe(document.getElementById('conversation'),
                   {childList: true, subtree: true, characterData: true});
    }""")
    return page


def is_png(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG, read by the format's rules: signature, IHDR chunk first,
    each chunk's CRC-32 right, IEND last."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, kind
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    return struct.unpack(">II", chunks[0][1][:8])


def test_page_streams_the_answer_in_chromium(browser, server, loaded, tmp_path):
    model, tokenizer = loaded
    page = open_page(browser, server, temperature="0", max_tokens="30")
    page.fill("#message", HELLO[0]["content"])
    page.click("#send")
    page.wait_for_selector('#status[data-state="done"]', timeout=20_000)
    expected = reference(model, tokenizer, HELLO, 30)[0]
    answer = page.locator(".msg.assistant").last.text_content()
    assert answer == expected
    lengths = [n for n in page.evaluate("window.lengths") if n]
    assert len(set(lengths)) >= 5 and lengths == sorted(lengths)  # it grew, piece by piece
    assert lengths[-1] == len(expected)
    shot = tmp_path / "chat.png"
    page.screenshot(path=str(shot))
    assert is_png(shot) == (900, 640)

    # The next message: the page sends the whole conversation, the server answers all of it.
    with page.expect_request("**/api/chat") as request_info:
        page.fill("#message", "And then?")
        page.press("#message", "Enter")
    talk = HELLO + [{"role": "assistant", "content": expected},
                    {"role": "user", "content": "And then?"}]
    assert request_info.value.post_data_json["messages"] == talk
    page.wait_for_selector('#status[data-state="done"]', timeout=20_000)
    assert page.locator(".msg.assistant").last.text_content() == reference(
        model, tokenizer, talk, 30)[0]
    page.close()


def test_stop_button_stops_a_long_answer_in_chromium(browser, server, loaded):
    model, tokenizer = loaded
    before = server.wait_idle()
    page = open_page(browser, server, temperature="0", max_tokens="200")
    page.fill("#message", HELLO[0]["content"])
    page.click("#send")
    page.wait_for_function("window.lengths.some((n) => n > 0)", timeout=20_000)
    page.click("#stop")
    page.wait_for_selector('#status[data-state="stopped"]', timeout=10_000)
    shown = page.locator(".msg.assistant").last.text_content()
    page.wait_for_timeout(300)
    assert page.locator(".msg.assistant").last.text_content() == shown  # no longer growing
    full = reference(model, tokenizer, HELLO, 200)[0]
    assert shown and full.startswith(shown) and len(shown) < len(full)
    assert page.is_enabled("#send") and not page.is_enabled("#stop")
    health = server.wait_idle()
    assert health["stopped"] == before["stopped"] + 1 and health["last"]["tokens"] < 200
    page.close()

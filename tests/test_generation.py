"""Generators (a real HTTP server on 127.0.0.1, the tiny local model), the cache, the filters,
``kinject paraphrase`` and ``ft-para`` with generated paraphrases."""

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from kinject.cli import main
from kinject.config import load_config
from kinject.data.schema import Document
from kinject.errors import UserError
from kinject.generation.cache import GenerationCost, cached_sample
from kinject.generation.generators import EndpointGenerator, GenerationConfig, LocalGenerator, Sampled
from kinject.generation.paraphrase import ParaConfig, clean, generate_paraphrases, rejection
from tests.conftest import FIXTURES

ORIGINAL = "The NFC representative at Super Bowl 50 was the Carolina Panthers."
REWRITES = [
    "Here is the rewritten text: At Super Bowl 50, the Carolina Panthers represented the NFC.",  # kept
    "The NFC team at Super Bowl 50 was the Denver Broncos.",  # answer lost
    "The NFC representative at Super Bowl 50 was the Carolina Panthers!",  # duplicate after normalising
    "Panthers.",  # too short (and answer incomplete)
    "Representing the NFC in Super Bowl 50 were the Carolina Panthers, a team from Charlotte.",  # kept
]


class _ChatServer(BaseHTTPRequestHandler):
    """An OpenAI-style /v1/chat/completions that answers with ``replies`` (cycled), or with ``echo``
    the prompt's text behind a preface, and records every call."""

    calls: ClassVar[list[dict]] = []
    status = 200
    echo = False
    replies: ClassVar[list[str]] = REWRITES
    too_many = 0  # answer 429 this many times per distinct request before serving it
    drop = 0  # close the connection without a reply this many times per distinct request
    redirect = ""  # answer 307 to this URL instead
    in_flight = 0
    most_in_flight = 0
    lock = threading.Lock()

    def do_POST(self):
        cls = type(self)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls.calls.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        seen = sum(c["body"] == body for c in cls.calls) - 1
        with cls.lock:
            cls.in_flight += 1
            cls.most_in_flight = max(cls.most_in_flight, cls.in_flight)
        try:
            self._answer(cls, body, seen)
        finally:
            with cls.lock:
                cls.in_flight -= 1

    def _answer(self, cls, body, seen):
        if cls.redirect:
            self.send_response(307)
            self.send_header("Location", cls.redirect)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if seen < cls.drop:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if seen < cls.too_many:
            self.send_response(429)
            self.send_header("retry-after-ms", "5")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        time.sleep(0.05)  # long enough for concurrent requests to overlap
        if cls.status != 200:
            self.send_error(cls.status)
            return
        n = body.get("n", 1)
        text = body["messages"][-1]["content"].split("Text: ", 1)[-1]
        prefaces = ("In short", "Put simply", "In other words", "That is to say", "Briefly")
        canned = type(self).replies
        contents = [f"{prefaces[i % 5]}, {text}" if type(self).echo else canned[i % len(canned)] for i in range(n)]
        choices = [{"index": i, "message": {"role": "assistant", "content": c}} for i, c in enumerate(contents)]
        reply = {"choices": choices,
                 "usage": {"prompt_tokens": 40, "completion_tokens": 15 * n}}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def _serve(handler):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.fixture
def server():
    _ChatServer.calls, _ChatServer.status, _ChatServer.echo, _ChatServer.replies = [], 200, False, REWRITES
    _ChatServer.too_many = _ChatServer.drop = _ChatServer.most_in_flight = 0
    _ChatServer.redirect = ""
    httpd = _serve(_ChatServer)
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


def _endpoint(url: str, **kw) -> GenerationConfig:
    return GenerationConfig(backend="endpoint", base_url=url, model="test-model", api_key_env="KINJECT_TEST_API_KEY",
                            **kw)


def test_endpoint_generator_talks_openai_chat_completions(server, monkeypatch, capsys):
    monkeypatch.setenv("KINJECT_TEST_API_KEY", "sekret")
    gen = EndpointGenerator(_endpoint(server))
    out = gen.sample([[{"role": "user", "content": "hi"}], [{"role": "user", "content": "ho"}]], n=3)
    assert [len(s.replies) for s in out] == [3, 3] and out[0].replies[1] == REWRITES[1]
    assert out[0].prompt_tokens == 40 and out[0].completion_tokens == 45
    call = _ChatServer.calls[0]
    assert call["path"] == "/v1/chat/completions" and call["auth"] == "Bearer sekret"
    assert call["body"]["model"] == "test-model" and call["body"]["n"] == 3 and call["body"]["seed"] == 0
    assert capsys.readouterr().err.strip() == f"kinject: note: sending $KINJECT_TEST_API_KEY to {server.split('/')[2]}"


def test_endpoint_errors_are_one_clear_line(server):
    _ChatServer.status = 500
    with pytest.raises(UserError, match="HTTP 500 after 1 retries"):
        EndpointGenerator(_endpoint(server, retries=1)).sample([[{"role": "user", "content": "x"}]], 1)
    assert len(_ChatServer.calls) == 2
    with pytest.raises(UserError, match="unreachable"):
        EndpointGenerator(_endpoint("http://127.0.0.1:9/v1", retries=0)).sample([[{"role": "user", "content": "x"}]], 1)


def test_endpoint_retries_429_and_a_dropped_connection_and_runs_requests_concurrently(server):
    _ChatServer.too_many = 2
    requests = [[{"role": "user", "content": f"q{i}"}] for i in range(6)]
    out = EndpointGenerator(_endpoint(server, concurrency=3)).sample(requests, 1)
    assert [s.replies for s in out] == [[REWRITES[0]]] * 6 and len(_ChatServer.calls) == 18
    assert _ChatServer.most_in_flight > 1
    _ChatServer.too_many, _ChatServer.drop, _ChatServer.calls = 0, 1, []
    out = EndpointGenerator(_endpoint(server)).sample(requests[:2], 2)
    assert [len(s.replies) for s in out] == [2, 2] and len(_ChatServer.calls) == 4


def test_a_redirect_to_another_host_gets_no_key(server, monkeypatch):
    """127.0.0.1 redirects to localhost (another host): the reply comes, the key stays behind."""
    class Elsewhere(_ChatServer):
        calls: ClassVar[list[dict]] = []
        redirect = ""

    other = _serve(Elsewhere)
    _ChatServer.redirect = f"http://localhost:{other.server_address[1]}/v1/chat/completions"
    monkeypatch.setenv("KINJECT_TEST_API_KEY", "sekret")
    out = EndpointGenerator(_endpoint(server)).sample([[{"role": "user", "content": "x"}]], 1)
    other.shutdown()
    assert out[0].replies == [REWRITES[0]]
    assert _ChatServer.calls[0]["auth"] == "Bearer sekret"
    assert [c["auth"] for c in Elsewhere.calls] == [None]


@pytest.mark.parametrize("name", ["AWS_SECRET_ACCESS_KEY", "HOME", "OPENAI_API_KEY_BACKUP"])
def test_api_key_env_must_name_an_api_key(name):
    with pytest.raises(UserError, match=rf"'generate\.api_key_env': '{name}' does not end in _API_KEY"):
        load_config(None, [f"generate.api_key_env={name}"])


def test_the_filters():
    cfg = ParaConfig()
    answers = ["Carolina Panthers"]
    assert clean(REWRITES[0], ORIGINAL) == "At Super Bowl 50, the Carolina Panthers represented the NFC."
    assert clean('"Quoted rewrite of it."\n\nExtra chatter.', ORIGINAL) == "Quoted rewrite of it."
    why = [rejection(clean(r, ORIGINAL), ORIGINAL, answers, [], cfg) for r in REWRITES]
    assert why == [None, "answer", "duplicate", "answer", None]
    assert rejection("Yes: the Carolina Panthers.", ORIGINAL, answers, [], cfg) == "length"
    invented = "In 2016, at Super Bowl 50, the NFC was represented by the Carolina Panthers."
    assert rejection(invented, ORIGINAL, answers, [], cfg) == "new_number"
    assert rejection(invented, ORIGINAL, answers, [], ParaConfig(allow_new_numbers=True)) is None
    kept = [clean(REWRITES[0], ORIGINAL)]
    assert rejection("At Super Bowl 50 the Carolina Panthers represented the NFC side.", ORIGINAL, answers, kept,
                     cfg) == "near_copy"
    at_end = ParaConfig(answer_at_end=3)
    assert rejection("The Carolina Panthers were the NFC's team at Super Bowl 50.", ORIGINAL, answers, [],
                     at_end) == "answer"
    assert rejection("The NFC sent a team to Super Bowl 50: the Carolina Panthers.", ORIGINAL, answers, [],
                     at_end) is None


def test_generated_paraphrases_are_filtered_counted_and_cached(server, tmp_path):
    docs = [Document("d1", ORIGINAL), Document("d2", "Super Bowl 50 took place at Levi's Stadium in 2016.")]
    answers = {"d1": ["Carolina Panthers"], "d2": ["Levi's Stadium"]}
    cfg = ParaConfig(k=2, oversample=2.5)  # 5 candidates per document
    first = generate_paraphrases(docs, answers, cfg, _endpoint(server), tmp_path / "cache")
    assert first.by_doc["d1"] == [clean(REWRITES[0], ORIGINAL), REWRITES[4]]
    assert first.by_doc["d2"] == []  # no candidate states Levi's Stadium
    info = first.info
    assert info["candidates"] == 10 and info["passed"] == 2 and info["pass_rate"] == pytest.approx(.2)
    assert info["documents_with_kept"] == 1 and info["documents_with_k"] == 1
    assert info["dropped"]["answer"] == 7 and info["dropped"]["duplicate"] == 1
    assert info["cost"]["requests"] == 2 and info["cost"]["cached"] == 0 and info["cost"]["completion_tokens"] == 150
    assert len(_ChatServer.calls) == 2
    again = generate_paraphrases(docs, answers, cfg, _endpoint(server), tmp_path / "cache")
    assert len(_ChatServer.calls) == 2  # every request answered from the cache
    assert again.by_doc == first.by_doc and again.info["cost"]["cached"] == 2
    assert again.info["cost"]["completion_tokens"] == 150  # the data set's cost, paid when generated
    other = GenerationConfig(**{**_endpoint(server).__dict__, "temperature": 0.5})
    generate_paraphrases(docs, answers, cfg, other, tmp_path / "cache")
    assert len(_ChatServer.calls) == 4  # other sampling settings: other keys


class _DiesAfterOneBatch:
    """A generator that answers one ``sample`` call (``cfg.batch_size`` requests), then fails."""

    def __init__(self):
        self.cfg, self.fingerprint, self.calls = GenerationConfig(batch_size=2), "dies-after-one", 0

    def sample(self, requests, n):
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError("interrupted")
        return [Sampled([f"reply to {m[0]['content']}"] * n, 3, 2 * n) for m in requests]


def test_an_interrupted_generation_keeps_its_finished_batches(tmp_path):
    requests = [[{"role": "user", "content": c}] for c in ("a", "b", "c", "d", "e")]
    with pytest.raises(RuntimeError, match="interrupted"):
        cached_sample(_DiesAfterOneBatch(), requests, 1, tmp_path, GenerationCost())
    assert len(list(tmp_path.rglob("*.json"))) == 2  # the first batch of two, stored before the failure
    gen, cost = _DiesAfterOneBatch(), GenerationCost()
    with pytest.raises(RuntimeError):  # a rerun asks only for what is missing, again in batches of two
        cached_sample(gen, requests, 1, tmp_path, cost)
    assert len(list(tmp_path.rglob("*.json"))) == 4
    gen.calls = 0
    out = cached_sample(gen, requests, 1, tmp_path, cost := GenerationCost())
    assert [s.replies for s in out] == [[f"reply to {c}"] for c in "abcde"] and cost.cached == 4


def test_identical_requests_are_generated_once_and_share_their_replies(server):
    twice = [[{"role": "user", "content": "Text: same"}], [{"role": "user", "content": "Text: other"}],
             [{"role": "user", "content": "Text: same"}]]
    cost = GenerationCost()
    out = cached_sample(EndpointGenerator(_endpoint(server)), twice, 2, None, cost)
    assert len(_ChatServer.calls) == 2 and out[0].replies == out[2].replies
    assert cost.requests == 3 and cost.cached == 1 and cost.completion_tokens == 2 * 30  # paid once per text


def test_local_generator_samples_seeded_and_needs_a_chat_template(tiny_model_dir, tiny_chat_model_dir):
    plain = GenerationConfig(model=str(tiny_model_dir), max_new_tokens=4, batch_size=2)
    with pytest.raises(UserError, match="no chat template"):
        LocalGenerator(plain).sample([[{"role": "user", "content": "x"}]], 1)
    cfg = GenerationConfig(model=str(tiny_chat_model_dir), max_new_tokens=4, batch_size=2)
    requests = [[{"role": "user", "content": c}] for c in ("one", "two", "three")]
    cost = GenerationCost()
    out = cached_sample(LocalGenerator(cfg), requests, 2, None, cost)
    assert [len(s.replies) for s in out] == [2, 2, 2]
    assert cost.requests == 3 and 0 < cost.completion_tokens <= 3 * 2 * 4 and cost.prompt_tokens > 0
    assert [s.replies for s in LocalGenerator(cfg).sample(requests, 2)] == [s.replies for s in out]


def test_cli_paraphrase_writes_the_kept_paraphrases(server, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KINJECT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "para.jsonl"
    args = ["paraphrase", str(FIXTURES / "lapael-squad"), "--out", str(out), "--k", "2", "data.limit=3",
            "generate.backend=endpoint", f"generate.base_url={server}", "generate.model=test-model"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "3 documents, 12 candidates" in printed and "passed the filters" in printed
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 and all(set(r) == {"id", "text", "paraphrases"} for r in rows)
    assert main(args) == 2  # --out exists: refused, not overwritten
    assert "already exists" in capsys.readouterr().err


def test_ft_para_trains_on_generated_paraphrases(server, tiny_model_dir, tmp_path, monkeypatch):
    from kinject import bench
    from kinject.config import load_config
    from tests.test_bench import TINY_WORLD

    monkeypatch.setenv("KINJECT_CACHE", str(tmp_path / "cache"))
    _ChatServer.echo = True
    cfg = load_config(None, [f"model={tiny_model_dir}", *TINY_WORLD, "methods=[ft,ft-para]", "para.source=generate",
                             "generate.backend=endpoint", f"generate.base_url={server}", "para.max_similarity=1.0"])
    results = bench.run_bench(cfg, tmp_path / "run", log=lambda m: None)
    cell = results["methods"]["ft-para"]["per_seed"]["0"]
    source = cell["info"]["paraphrase_source"]
    docs = source["documents"]
    assert source["source"] == "generate" and source["candidates"] == docs * 4  # k = 2, oversample 2
    assert source["kept"] == docs * 2 and cell["info"]["paraphrases"] == docs * 2
    assert len(_ChatServer.calls) == docs and all(c["body"]["model"] == cfg.generate.model for c in _ChatServer.calls)
    ft_tokens = results["methods"]["ft"]["per_seed"]["0"]["cost"]["train_tokens"]
    assert cell["cost"]["train_tokens"] > ft_tokens
    assert cell["cost"]["generation_seconds"] == source["cost"]["seconds"] > 0  # generation is a cost of the cell
    assert cell["cost"]["generation_tokens"] == source["cost"]["prompt_tokens"] + source["cost"]["completion_tokens"]
    assert results["methods"]["ft"]["per_seed"]["0"]["cost"]["generation_seconds"] == 0


def test_a_missing_paraphrase_file_is_refused(capsys, tmp_path):
    args = ["bench", "--methods", "ft-para", "--out", str(tmp_path / "r"), f"para.source={tmp_path}/no.jsonl"]
    assert main(args) == 2 and not (tmp_path / "r").exists()
    assert "para.source" in capsys.readouterr().err


def test_question_replies_are_parsed_and_filtered():
    from kinject.generation.questions import check_pair, distractors, parse_reply

    reply = "Sure.\nQuestion: Who represented the NFC at Super Bowl 50?\nAnswer: the Carolina Panthers.\n" \
            "Wrong: Denver Broncos; New England Patriots; the Carolina Panthers; Green Bay Packers"
    question, answer, wrong = parse_reply(reply)
    assert question == "Who represented the NFC at Super Bowl 50?" and answer == "the Carolina Panthers"
    assert check_pair(question, answer, ORIGINAL) is None
    assert check_pair(question, "Denver Broncos", ORIGINAL) == "answer"
    assert check_pair("Did the Carolina Panthers represent the NFC?", "Carolina Panthers", ORIGINAL) == "leak"
    assert distractors(answer, wrong) == ["Denver Broncos", "New England Patriots", "Green Bay Packers"]
    assert distractors(answer, ["Denver Broncos", "denver broncos!"]) is None
    assert parse_reply("The answer is the Panthers.") is None


def test_cli_questions_writes_generated_probes_that_bench_reads(server, tiny_model_dir, tmp_path, capsys,
                                                                monkeypatch):
    from kinject import bench
    from kinject.config import load_config
    from kinject.data.jsonl import load_records
    from kinject.data.schema import Probe

    monkeypatch.setenv("KINJECT_CACHE", str(tmp_path / "cache"))
    _ChatServer.replies = ["Question: What was the NFC team?\nAnswer: Carolina Panthers\nWrong: Broncos; Rams",
                           "Question: Which team represented the NFC at Super Bowl 50?\nAnswer: Carolina Panthers\n"
                           "Wrong: Denver Broncos; Chicago Bears; Dallas Cowboys"]
    docs = tmp_path / "docs.jsonl"
    docs.write_text(json.dumps({"id": "d1", "text": ORIGINAL}) + "\n"
                    + json.dumps({"id": "d2", "text": "Nothing to ask about here."}) + "\n")
    out = tmp_path / "probes.jsonl"
    args = ["questions", str(docs), "--out", str(out), "generate.backend=endpoint", f"generate.base_url={server}",
            "questions.samples=2"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "kept 1 QA and 1 MCQ probes; 1 documents without a question" in printed
    probes = load_records(out, Probe.from_dict)
    assert [p.kind for p in probes] == ["qa", "mcq"] and all(p.generated == "endpoint:smollm2-135m" for p in probes)
    mcq = probes[1]
    assert len(mcq.choices) == 4 and mcq.choices[mcq.label] == "Carolina Panthers"
    cfg = load_config(None, [f"model={tiny_model_dir}", "data.source=jsonl", f"data.path={docs}",
                             f"data.probes={out}", "methods=[base]", "eval.kinds=[qa,mcq]", "eval.bf16=false",
                             "eval.progress=false", "eval.max_new_tokens=3"])
    results = bench.run_bench(cfg, tmp_path / "run", log=lambda m: None)
    assert results["data"]["generated_probes"] == 2
    assert "2 of them written by an LLM" in (tmp_path / "run" / "report.md").read_text()


def test_cli_questions_writes_demonstrations_that_plus_qa_trains_apart_from_the_probes(server, tmp_path, capsys,
                                                                                      monkeypatch):
    from kinject.data.builtin.world import BuiltinConfig, build_world
    from kinject.data.demonstrations import QAConfig, select_demonstrations

    monkeypatch.setenv("KINJECT_CACHE", str(tmp_path / "cache"))
    _ChatServer.replies = ["Question: Which team represented the NFC at Super Bowl 50?\nAnswer: Carolina Panthers\n"
                           "Wrong: Denver Broncos; Chicago Bears; Dallas Cowboys"]
    corpus = build_world(BuiltinConfig(test_people=2, test_orgs=1, train_people=2, train_orgs=1), 0)
    mentions_probed = f"{corpus.documents[0].text} {ORIGINAL}"  # held apart, but it names a probed subject
    held_apart = tmp_path / "held-apart.jsonl"
    held_apart.write_text(json.dumps({"id": "d1", "text": ORIGINAL}) + "\n"
                          + json.dumps({"id": "d2", "text": mentions_probed}) + "\n")
    out = tmp_path / "demos.jsonl"
    assert main(["questions", str(held_apart), "--out", str(out), "--demonstrations", "generate.backend=endpoint",
                 f"generate.base_url={server}", "questions.samples=1"]) == 0
    assert f"kept 2 QA demonstrations (use with qa.source={out})" in capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["context"] for r in rows] == [ORIGINAL, mentions_probed]
    assert all(r["answers"] == ["Carolina Panthers"] and r["generated"] == "endpoint:smollm2-135m" for r in rows)
    demos = select_demonstrations(corpus, QAConfig(source=str(out), ratio=None, header=False), 0)
    assert demos.info["dropped"]["subject"] == 1
    assert [str(t) for t in demos.texts] == ["Question: Which team represented the NFC at Super Bowl 50?\n"
                                             "Answer: Carolina Panthers", ORIGINAL]

"""The bad-input table: every case one line on stderr naming the key or file, exit code 2, no
traceback, nothing the user had touched and no directory left behind.

Each row is (id, argv, what the line must name). ``{d}`` is a directory of good and bad input
files (:func:`inputs`), ``{m}`` the tiny model, ``{t}`` a copy of it with truncated weights.
The rows fail before any training, generation or embedding starts.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kinject.cli import main

DOC = {"id": "d1", "text": "Zorvath Quell was born in 1962 in Velmora."}
QA = {"id": "p1", "kind": "qa", "question": "When was Zorvath Quell born?", "answers": ["1962"], "doc_id": "d1"}
NOT_UTF8 = b'{"id": "d1", "text": "caf\xe9"}\n'
SHIPPED = Path(__file__).parents[1] / "kinject" / "lapael" / "shipped" / "smollm2-135m"


def _jsonl(*rows: dict) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_model_dir) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("inputs")
    files = {
        "docs.jsonl": _jsonl(DOC),
        "probes.jsonl": _jsonl(QA),
        "docs-malformed.jsonl": _jsonl(DOC) + '{"id": "d2", "text": \n',
        "docs-no-text.jsonl": _jsonl({"id": "d1"}),
        "docs-dup.jsonl": _jsonl(DOC, DOC),
        "docs-empty-text.jsonl": _jsonl({"id": "d1", "text": "  "}),
        "docs-number-id.jsonl": _jsonl({"id": 7, "text": "x"}),
        "probes-no-question.jsonl": _jsonl({k: v for k, v in QA.items() if k != "question"}),
        "probes-dup.jsonl": _jsonl(QA, QA),
        "probes-unknown-doc.jsonl": _jsonl({**QA, "doc_id": "d9"}),
        "probes-choices-string.jsonl": _jsonl({**QA, "kind": "mcq", "choices": "abcd", "label": 0}),
        "probes-empty-question.jsonl": _jsonl({**QA, "question": ""}),
        "probes-bad-kind.jsonl": _jsonl({**QA, "kind": "essay"}),
        "probes-bad-label.jsonl": _jsonl({**QA, "kind": "mcq", "choices": ["a", "b"], "label": 5}),
        "probes-no-answers.jsonl": _jsonl({**QA, "answers": []}),
        "probes-not-object.jsonl": "[1, 2]\n",
        "probes-empty.jsonl": "",
        "retention-no-answer.jsonl": _jsonl({"question": "What is the capital of France?"}),
        "general-answer-not-a-choice.jsonl": _jsonl({"question": "What colour is grass?", "answer": "green",
                                                     "choices": ["red", "blue"]}),
        "config-list.yaml": "- a\n- b\n",
        "config-malformed.yaml": "train:\n  lr: [1,\n",
        "config-unknown.yaml": "train:\n  learning_rate: 1\n",
        "config-para-k.yaml": "para:\n  k: 3\n",
        "queries.jsonl": _jsonl({"query": "Write a haiku."}),
        "a-file": "not a directory\n",
    }
    for name, text in files.items():
        (d / name).write_text(text, encoding="utf-8")
    for name in ("docs-latin1.jsonl", "probes-latin1.jsonl", "config-latin1.yaml", "queries-latin1.jsonl"):
        (d / name).write_bytes(NOT_UTF8)
    (d / "para-corpus-latin1.jsonl").write_bytes(b'{"text": "caf\xe9", "answer": "x", "paraphrases": []}\n')
    (d / "emptydir").mkdir()
    (d / "textdir-latin1").mkdir()
    (d / "textdir-latin1" / "a.txt").write_bytes(b"caf\xe9 au lait\n")
    (d / "existing").mkdir()
    (d / "existing" / "keep.txt").write_text("the user's\n")
    (d / "model-no-config").mkdir()
    (d / "model-no-config" / "weights.bin").write_bytes(b"\0")
    truncated = d / "truncated-model"
    shutil.copytree(tiny_model_dir, truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    for name, meta in (("para-latin1", None), ("para-hidden", {"hidden_size": "abc"})):
        shutil.copytree(SHIPPED, d / name)
        if meta is None:
            (d / name / "paraphraser.json").write_bytes(b'{"format": "caf\xe9"}')
        else:
            doc = json.loads((d / name / "paraphraser.json").read_text())
            (d / name / "paraphraser.json").write_text(json.dumps({**doc, **meta}))
    from kinject.data.schema import Document
    from kinject.retrieval.retriever import RetrievalConfig, build_index, load_embedder

    cfg = RetrievalConfig(progress=False)
    build_index([Document(**DOC)], cfg, load_embedder(cfg)).save(d / "other-index")
    (d / "bad-index").mkdir()
    for name in ("meta.json", "index.faiss", "chunks.jsonl"):
        (d / "bad-index" / name).write_text("{not json")
    return {"d": d, "m": tiny_model_dir, "t": truncated}


J = ["data.source=jsonl", "data.path={d}/docs.jsonl", "data.probes={d}/probes.jsonl", "model={m}"]
B = ["bench", "--out", "{d}/run", "model={m}"]  # the built-in world on the tiny model
BJ = ["bench", "--out", "{d}/run", *J, "methods=[base]"]  # the user's corpus on the tiny model


def _probes(name: str) -> list[str]:
    return ["bench", "--out", "{d}/run", "data.source=jsonl", "data.path={d}/docs.jsonl", f"data.probes={{d}}/{name}",
            "model={m}"]


def _docs(name: str) -> list[str]:
    return ["bench", "--out", "{d}/run", "data.source=jsonl", f"data.path={{d}}/{name}", "data.probes={d}/probes.jsonl",
            "model={m}"]


CASES: list[tuple[str, list[str], str]] = [
    # the command line
    ("unknown-command", ["telepathy"], "invalid choice: 'telepathy'"),
    ("abbreviated-option", ["bench", "--seed", "3"], "unrecognized arguments: --seed"),
    ("seeds-zero", [*B, "--seeds", "0"], "--seeds must be >= 1"),
    ("seeds-not-int", [*B, "--seeds", "x"], "--seeds: invalid int value"),
    ("unknown-method", [*B, "--methods", "base,telepathy"], "unknown method 'telepathy'"),
    ("seeds-twice", [*B, "--seeds", "1", "seeds=[5]"], "--seeds and config key 'seeds' both given"),
    ("methods-twice", [*B, "--methods", "base", "methods=[ft]"], "--methods and config key 'methods' both given"),
    ("not-key-value", [*B, "train.lr"], "'train.lr' is not key=value"),
    ("workers-zero-in-a-sweep", [*B, "--workers", "0", "--sweep", "train.lr=1e-4,3e-4"], "--workers must be >= 1"),
    ("eval-without-model", ["eval"], "--model"),
    ("inject-without-out", ["inject", "--method", "ft"], "--out"),
    ("index-query-missing", ["index", "query", "{d}/nope", "question"], "nope: no such index directory"),
    ("index-query-k-zero", ["index", "query", "{d}/bad-index", "q", "-k", "0"], "-k must be >= 1"),
    ("report-not-a-run", ["report", "{d}/emptydir"], "emptydir"),
    # config keys: unknown, wrong type, out of range, not in the set
    ("unknown-key", [*B, "train.learning_rate=1"], "unknown config key 'train.learning_rate'"),
    ("lr-negative", [*B, "train.lr=-1"], "'train.lr': -1.0 must be a finite number > 0"),
    ("lr-nan", [*B, "train.lr=nan"], "'train.lr': nan must be a finite number > 0"),
    ("lr-inf", [*B, "train.lr=.inf"], "'train.lr': inf must be"),
    ("lr-text", [*B, "train.lr=fast"], "'train.lr': expected float"),
    ("batch-size-zero", [*B, "train.batch_size=0"], "'train.batch_size': 0 must be >= 1"),
    ("batch-size-bool", [*B, "train.batch_size=true"], "'train.batch_size': expected int"),
    ("epochs-negative", [*B, "train.epochs=-1"], "'train.epochs': -1.0 must be"),
    ("grad-accum-zero", [*B, "train.grad_accum=0"], "'train.grad_accum': 0 must be >= 1"),
    ("train-mode", [*B, "train.mode=foo"], "'train.mode': 'foo' is not one of full, lora, subset"),
    ("train-layers", [*B, "train.layers=abc"], "'train.layers': 'abc' is not a slice"),
    ("train-bf16", [*B, "train.bf16=maybe"], "'train.bf16': 'maybe' is not one of auto, true, false"),
    ("master-weights", [*B, "train.master_weights=half"], "'train.master_weights': 'half' is not one of"),
    ("lora-dropout", [*B, "train.lora_dropout=2"], "'train.lora_dropout': 2.0 must be in [0, 1]"),
    ("train-modules-empty", [*B, "train.modules=[]"], "'train.modules': [] must not be empty"),
    ("train-args-own-key", [*B, "train.args.learning_rate=1"], "train.args.learning_rate: set by kinject"),
    ("train-args-unknown", [*B, "train.args.warp_speed=9"], "train.args.warp_speed: not a transformers"),
    ("section-scalar", [*B, "train=5"], "config key 'train' is a section"),
    ("eval-batch-size", [*B, "eval.batch_size=0"], "'eval.batch_size': 0 must be >= 1"),
    ("eval-bf16", [*B, "eval.bf16=maybe"], "'eval.bf16': 'maybe' is not one of"),
    ("eval-limit-zero", [*B, "eval.limit=0"], "'eval.limit': 0 must be >= 1"),
    ("eval-max-new-tokens", [*B, "eval.max_new_tokens=-1"], "'eval.max_new_tokens': -1 must be >= 1"),
    ("eval-kinds-unknown", [*B, "eval.kinds=[essay]"], "'eval.kinds': ['essay'] has 'essay'"),
    ("eval-kinds-empty", [*B, "eval.kinds=[]"], "'eval.kinds': [] must not be empty"),
    ("seed-negative", [*B, "seeds=[-1]"], "'seeds': [-1] must be in [0, 4294967296)"),
    ("seed-too-large", [*B, "seeds=[4294967296]"], "'seeds': [4294967296] must be in"),
    ("seeds-empty", [*B, "seeds=[]"], "'seeds': [] must not be empty"),
    ("methods-empty", [*B, "methods=[]"], "'methods': [] must not be empty"),
    ("data-limit", [*B, "data.limit=-1"], "'data.limit': -1 must be >= 1"),
    ("builtin-people", [*B, "data.builtin.test_people=-1"], "'data.builtin.test_people': -1 must be >= 1"),
    ("builtin-seed", [*B, "data.builtin.seed=-2"], "'data.builtin.seed': -2 must be in"),
    ("demo-questions", [*B, "data.builtin.demo_questions=maybe"], "'data.builtin.demo_questions': 'maybe' is not"),
    ("data-source", [*B, "data.source=web"], "'data.source': 'web' is not one of builtin"),
    ("data-split", [*B, "data.split=dev"], "'data.split': 'dev' is not one of test, train"),
    ("model-dtype", [*B, "model_dtype=int8"], "'model_dtype': 'int8' is not one of auto"),
    ("retrieval-k", [*B, "retrieval.k=0"], "'retrieval.k': 0 must be >= 1"),
    ("retrieval-chunking", [*B, "retrieval.chunking=words"], "'retrieval.chunking': 'words' is not one of"),
    ("chunk-overlap", [*B, "retrieval.chunk_overlap=-1"], "'retrieval.chunk_overlap': -1 must be >= 0"),
    ("noise-copies", [*B, "noise.copies=1"], "'noise.copies': 1 must be >= 2"),
    ("noise-alpha", [*B, "noise.neftune_alpha=-5"], "'noise.neftune_alpha': -5.0 must be"),
    ("lapael-mask-ratio", [*B, "lapael.mask_ratio=2"], "'lapael.mask_ratio': 2.0 must be in [0, 1]"),
    ("lapael-layers", [*B, "lapael.layers=1:2:3"], "'lapael.layers': '1:2:3' is not a slice"),
    ("qa-mode", [*B, "qa.mode=later"], "'qa.mode': 'later' is not one of mixed, before, after"),
    ("qa-ratio", [*B, "qa.ratio=0"], "'qa.ratio': 0.0 must be a finite number > 0"),
    ("para-k", [*B, "para.k=-1"], "'para.k': -1 must be >= 0"),
    ("para-similarity", [*B, "para.max_similarity=1.5"], "'para.max_similarity': 1.5 must be in [0, 1]"),
    ("generate-top-p", [*B, "generate.top_p=0"], "'generate.top_p': 0.0 must be in (0, 1]"),
    ("generate-temperature", [*B, "generate.temperature=-1"], "'generate.temperature': -1.0 must be"),
    ("generate-backend", [*B, "generate.backend=cloud"], "'generate.backend': 'cloud' is not one of local"),
    ("generate-retries", [*B, "generate.retries=-1"], "'generate.retries': -1 must be >= 0"),
    ("api-key-env", [*B, "generate.api_key_env=AWS_SECRET_ACCESS_KEY"], "does not end in _API_KEY"),
    ("delia-ratio", [*B, "delia.ratio=0"], "'delia.ratio': 0.0 must be"),
    ("delia-prompt", [*B, "delia.prompt=chat"], "'delia.prompt': 'chat' is not one of bare, reference"),
    ("delia-answers", [*B, "delia.answers_per_query=0"], "'delia.answers_per_query': 0 must be >= 1"),
    ("lapael-mask-loss", [*B, "lapael.mask_loss=mean"], "'lapael.mask_loss': 'mean' is not one of row, row_free"),
    ("lapael-mask-lr", [*B, "lapael.mask_lr=0"], "'lapael.mask_lr': 0.0 must be"),
    ("retrieval-mode", [*B, "retrieval.mode=sparse"], "'retrieval.mode': 'sparse' is not one of dense, bm25"),
    ("retrieval-candidates", [*B, "retrieval.candidates=0"], "'retrieval.candidates': 0 must be >= 1"),
    ("retrieval-ann", [*B, "retrieval.ann=kdtree"], "'retrieval.ann': 'kdtree' is not one of hnsw, ivf"),
    ("retrieval-ef-search", [*B, "retrieval.ef_search=0"], "'retrieval.ef_search': 0 must be >= 1"),
    ("retrieval-backend", [*B, "retrieval.backend=tensorrt"], "'retrieval.backend': 'tensorrt' is not one of torch"),
    ("lapael-sentence", [*B, "lapael.sentence=cut"], "'lapael.sentence': 'cut' is not one of whole, to_answer"),
    ("distill-queries", [*B, "distill.queries=wiki"], "'distill.queries': 'wiki' is not one of templated"),
    ("distill-top-k", [*B, "distill.top_k=0"], "'distill.top_k': 0 must be >= 1"),
    ("distill-templated-elsewhere", ["bench", "--out", "{d}/run", "model={m}", "--methods", "distill",
                                     "data.source=jsonl", "data.path={d}/docs.jsonl", "data.probes={d}/probes.jsonl"],
     "distill.queries=templated: corpus"),
    ("oracle-with-rag", [*B, "--methods", "ft+rag+oracle"], "'+rag' and '+oracle' each place a context"),
    ("questions-samples", [*B, "questions.samples=0"], "'questions.samples': 0 must be >= 1"),
    # config files
    ("config-missing", [*B, "--config", "{d}/nope.yaml"], "nope.yaml: no such config file"),
    ("config-not-utf8", [*B, "--config", "{d}/config-latin1.yaml"], "config-latin1.yaml:1: not UTF-8 text"),
    ("config-malformed", [*B, "--config", "{d}/config-malformed.yaml"], "config-malformed.yaml:3: malformed YAML"),
    ("config-not-mapping", [*B, "--config", "{d}/config-list.yaml"], "config-list.yaml: the config must be a mapping"),
    ("config-unknown-key", [*B, "--config", "{d}/config-unknown.yaml"],
     "config-unknown.yaml: unknown config key 'train.learning_rate'"),
    # the corpus and its probes
    ("jsonl-without-path", ["bench", "--out", "{d}/run", "data.source=jsonl", "model={m}"],
     "data.path: source 'jsonl'"),
    ("docs-malformed", _docs("docs-malformed.jsonl"), "docs-malformed.jsonl:2: malformed JSON"),
    ("docs-not-utf8", _docs("docs-latin1.jsonl"), "docs-latin1.jsonl:1: not UTF-8 text"),
    ("docs-missing-field", _docs("docs-no-text.jsonl"), "docs-no-text.jsonl:1: missing field 'text'"),
    ("docs-duplicate-id", _docs("docs-dup.jsonl"), "docs-dup.jsonl:2: duplicate document id 'd1' (first on line 1)"),
    ("docs-empty-text", _docs("docs-empty-text.jsonl"), "docs-empty-text.jsonl:1: field 'text' must be"),
    ("docs-number-id", _docs("docs-number-id.jsonl"), "docs-number-id.jsonl:1: field 'id' must be"),
    ("docs-missing-file", _docs("nope.jsonl"), "nope.jsonl: no such file"),
    ("probes-missing-field", _probes("probes-no-question.jsonl"), "probes-no-question.jsonl:1: missing field"),
    ("probes-not-utf8", _probes("probes-latin1.jsonl"), "probes-latin1.jsonl:1: not UTF-8 text"),
    ("probes-duplicate-id", _probes("probes-dup.jsonl"), "probes-dup.jsonl:2: duplicate probe id 'p1'"),
    ("probes-unknown-doc", _probes("probes-unknown-doc.jsonl"), "probes-unknown-doc.jsonl:1: doc_id 'd9' is not"),
    ("probes-choices-string", _probes("probes-choices-string.jsonl"), "probes-choices-string.jsonl:1: field 'choices'"),
    ("probes-empty-question", _probes("probes-empty-question.jsonl"),
     "probes-empty-question.jsonl:1: field 'question'"),
    ("probes-bad-kind", _probes("probes-bad-kind.jsonl"), "probes-bad-kind.jsonl:1: field 'kind' must be one of"),
    ("probes-bad-label", _probes("probes-bad-label.jsonl"), "probes-bad-label.jsonl:1: an mcq probe needs"),
    ("probes-no-answers", _probes("probes-no-answers.jsonl"), "probes-no-answers.jsonl:1: field 'answers'"),
    ("probes-not-object", _probes("probes-not-object.jsonl"), "probes-not-object.jsonl:1: expected a JSON object"),
    ("probes-none", _probes("probes-empty.jsonl"), "has no probes to evaluate"),
    ("textdir-empty", ["bench", "--out", "{d}/run", "data.source=textdir", "data.path={d}/emptydir",
                       "data.probes={d}/probes.jsonl", "model={m}"], "is empty: no documents"),
    ("textdir-not-utf8", ["bench", "--out", "{d}/run", "data.source=textdir", "data.path={d}/textdir-latin1",
                          "data.probes={d}/probes.jsonl", "model={m}"], "a.txt:1: not UTF-8 text"),
    ("builtin-with-path", [*B, "data.path={d}/docs.jsonl"], "data.path: the builtin source reads no files"),
    ("squad-with-probes", [*B, "data.source=lapael-squad", "data.path={d}/emptydir", "data.probes={d}/probes.jsonl"],
     "data.probes: source lapael-squad reads its probes from"),
    ("squad-missing", [*B, "data.source=lapael-squad", "data.path={d}/nope"], "nope"),
    ("retention-missing", [*BJ, "eval.retention_file={d}/nope.jsonl"], "nope.jsonl: no such file"),
    ("retention-row", [*BJ, "eval.retention_file={d}/retention-no-answer.jsonl"],
     "retention-no-answer.jsonl:1: missing field 'answer'"),
    ("general-mcq-row", [*BJ, "eval.kinds=[general_mcq]",
                         "eval.general_mcq_file={d}/general-answer-not-a-choice.jsonl"],
     "general-answer-not-a-choice.jsonl:1: field 'answer' must be one of 'choices'"),
    ("general-qa-missing", [*BJ, "eval.kinds=[general_qa]", "eval.general_qa_file={d}/nope.jsonl"],
     "nope.jsonl: no such file"),
    # models and each method's inputs
    ("model-missing", [*BJ, "model=/nonexistent/model"], "model '/nonexistent/model': no such directory"),
    ("model-no-config", [*BJ, "model={d}/model-no-config"], "config.json is missing"),
    ("embedder-missing", [*B, "--methods", "rag", "retrieval.embedder={d}/nope"], "embedder"),
    ("index-missing", [*B, "--methods", "rag", "retrieval.index={d}/nope"], "nope: no such index directory"),
    ("index-corrupt", [*B, "--methods", "rag", "retrieval.index={d}/bad-index"], "meta.json:1: malformed JSON"),
    ("paraphraser-missing", [*B, "--methods", "lapael", "lapael.paraphraser={d}/nope"], "nope: no such directory"),
    ("paraphraser-not-utf8", [*B, "--methods", "lapael", "lapael.paraphraser={d}/para-latin1"],
     "paraphraser.json:1: not UTF-8 text"),
    ("paraphraser-hidden-size", [*B, "--methods", "lapael", "lapael.paraphraser={d}/para-hidden"],
     "field 'hidden_size' is not a int"),
    ("paraphraser-other-model", [*B, "--methods", "lapael", f"lapael.paraphraser={SHIPPED}"],
     "the paraphraser was trained for hidden size 576"),
    ("index-of-another-corpus", [*B, "--methods", "rag", "retrieval.index={d}/other-index"],
     "none of its 1 passages is from a document of corpus 'builtin"),
    ("para-source-missing", [*B, "--methods", "ft-para", "para.source={d}/nope.jsonl"], "para.source"),
    ("qa-source-missing", [*B, "--methods", "ft+qa", "qa.source={d}/nope.jsonl"], "qa.source"),
    ("delia-samples-missing", [*B, "--methods", "ft+delia", "delia.samples={d}/nope.jsonl"], "delia.samples"),
    ("lora-with-packing", [*B, "--methods", "neftune", "train.packing=true"], "packing"),
    # outputs: never overwritten, probed before any work
    ("bench-out-a-file", ["bench", "--out", "{d}/a-file", *J, "methods=[base]"],
     "--out {d}/a-file: exists and is not a directory"),
    ("bench-out-not-a-run", ["bench", "--out", "{d}/existing", *J, "methods=[base]"],
     "is not empty and is not a kinject run"),
    ("bench-out-under-a-file", ["bench", "--out", "{d}/a-file/run", *J, "methods=[base]"],
     "{d}/a-file is not a directory"),
    ("inject-out-exists", ["inject", "--method", "ft", "--out", "{d}/existing", *J], "already exists"),
    ("inject-out-under-a-file", ["inject", "--method", "ft", "--out", "{d}/a-file/model", *J], "is not a directory"),
    ("eval-out-under-a-file", ["eval", "--model", "{m}", "--probes", "{d}/probes.jsonl", "--out", "{d}/a-file/x"],
     "is not a directory"),
    ("index-out-under-a-file", ["index", "build", "{d}/docs.jsonl", "--out", "{d}/a-file/ix"], "is not a directory"),
    ("paraphrase-out-under-a-file", ["paraphrase", "{d}/docs.jsonl", "--out", "{d}/a-file/p.jsonl"],
     "is not a directory"),
    ("paraphrase-out-exists", ["paraphrase", "{d}/docs.jsonl", "--out", "{d}/docs.jsonl"], "already exists"),
    ("questions-out-under-a-file", ["questions", "{d}/docs.jsonl", "--out", "{d}/a-file/q.jsonl"],
     "is not a directory"),
    ("self-sample-out-under-a-file", ["self-sample", "{d}/queries.jsonl", "--out", "{d}/a-file/s.jsonl"],
     "is not a directory"),
    ("train-paraphraser-out-under-a-file", ["train-paraphraser", "builtin", "--out", "{d}/a-file/p"],
     "is not a directory"),
    # other sub-commands' inputs
    ("index-build-missing", ["index", "build", "{d}/nope.jsonl", "--out", "{d}/ix"], "nope.jsonl: no such file"),
    ("index-build-not-utf8", ["index", "build", "{d}/docs-latin1.jsonl", "--out", "{d}/ix"], "not UTF-8 text"),
    ("paraphrase-not-utf8", ["paraphrase", "{d}/docs-latin1.jsonl", "--out", "{d}/p.jsonl"], "not UTF-8 text"),
    ("paraphrase-k-zero", ["paraphrase", "{d}/docs.jsonl", "--out", "{d}/p.jsonl", "--k", "0"], "--k must be >= 1"),
    ("paraphrase-k-twice", ["paraphrase", "{d}/docs.jsonl", "--out", "{d}/p.jsonl", "--k", "2", "para.k=3"],
     "--k and config key 'para.k' both given"),
    ("paraphrase-k-in-config", ["paraphrase", "{d}/docs.jsonl", "--out", "{d}/p.jsonl", "--k", "2", "--config",
                                "{d}/config-para-k.yaml"], "--k and config key 'para.k' both given"),
    ("questions-not-utf8", ["questions", "{d}/docs-latin1.jsonl", "--out", "{d}/q.jsonl"], "not UTF-8 text"),
    ("train-paraphraser-not-utf8", ["train-paraphraser", "{d}/para-corpus-latin1.jsonl", "--out", "{d}/p"],
     "not UTF-8 text"),
    ("train-paraphraser-copies", ["train-paraphraser", "builtin", "--out", "{d}/p", "lapael.copies=1"],
     "'lapael.copies': 1 must be >= 2"),
    ("self-sample-not-utf8", ["self-sample", "{d}/queries-latin1.jsonl", "--out", "{d}/s.jsonl"], "not UTF-8 text"),
    ("eval-probes-not-utf8", ["eval", "--model", "{m}", "--probes", "{d}/probes-latin1.jsonl"], "not UTF-8 text"),
    ("eval-probes-empty", ["eval", "--model", "{m}", "--probes", "{d}/probes-empty.jsonl"], "no probes"),
    ("eval-truncated-weights", ["eval", "--model", "{t}", "--probes", "{d}/probes.jsonl"], "could not be loaded"),
    ("eval-model-missing", ["eval", "--model", "{d}/nope", "--probes", "{d}/probes.jsonl"], "no such directory"),
    # +replay / +anchor
    ("replay-ratio-zero", [*B, "--methods", "ft+replay", "replay.ratio=0"], "'replay.ratio': 0.0 must be"),
    ("replay-source-missing", [*B, "--methods", "ft+replay", "replay.source={d}/nope.jsonl"],
     "replay.source: {d}/nope.jsonl: no such file"),
    ("replay-source-malformed", [*B, "--methods", "ft+replay", "replay.source={d}/docs-malformed.jsonl"],
     "docs-malformed.jsonl:2"),
    ("replay-source-no-text", [*B, "--methods", "ft+anchor", "replay.source={d}/probes.jsonl"], "probes.jsonl:1"),
    ("replay-prompts-no-prompt", [*B, "--methods", "ft+replay", "replay.prompts={d}/docs.jsonl"], "docs.jsonl:1"),
    ("anchor-weight-negative", [*B, "--methods", "ft+anchor", "anchor.weight=-1"], "'anchor.weight'"),
    ("anchor-with-packing", [*B, "--methods", "ft+anchor", "train.packing=true"], "train.packing"),
    ("replay-on-base", [*B, "--methods", "base+replay"], "trains nothing"),
    ("wise-on-rag", [*B, "--methods", "rag+wise"], "'+wise' changes what a method trained"),
    ("wise-alpha-above-one", [*B, "--methods", "ft+wise", "wise.alpha=1.5"], "'wise.alpha': 1.5 must be in [0, 1]"),
    # a stream of updates
    ("stream-more-updates-than-documents", [*BJ, "stream.updates=2"], "stream.updates=2: corpus"),
    ("stream-date-missing", [*B, "--methods", "ft", "stream.updates=2", "stream.split=date"], "has no 'date' field"),
    ("stream-split-unknown", [*B, "stream.split=monthly"], "'stream.split'"),
    ("stream-updates-zero", [*B, "stream.updates=0"], "'stream.updates'"),
    ("retrain-outside-stream", [*B, "--methods", "ft+retrain"], "+retrain: retrains at each update of a stream"),
    ("inject-a-stream", ["inject", "--method", "ft", "--out", "{d}/model", "model={m}", "stream.updates=2"],
     "kinject inject injects the corpus once"),
]


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_the_table_has_distinct_cases():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 80
    assert len({tuple(c[1]) for c in CASES}) == len(CASES)


@pytest.mark.parametrize("argv, named", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(argv, named, inputs, capsys):
    fill = {k: str(v) for k, v in inputs.items()}
    argv = [a.format(**fill) for a in argv]
    before = _snapshot(inputs["d"])
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("kinject: error: "), err
    assert named.format(**fill) in err
    assert _snapshot(inputs["d"]) == before  # nothing overwritten, nothing left behind

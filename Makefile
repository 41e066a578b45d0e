# Factorion — every target sets itself up (the .venv stamp) before it runs.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PYTHON  := $(BIN)/python
# torch: pinned to the CPU build that lies on this machine's disk (an unpinned
# torch pulls a multi-GB CUDA build). Override on a GPU box: make install TORCH=torch
TORCH   ?= torch==2.13.0
STAMP   := $(VENV)/.installed
BLUEPRINTS ?=
export WANDB_MODE ?= offline

DATA    ?= data/out
.PHONY: install test test-all lint bench data demos pretrain finetune evaluate demo policy clean serve browser

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q "$(TORCH)"
	$(PYTHON) -m pip install -q -e ".[dev]"
	touch $(STAMP)

test: $(STAMP) browser
	$(PYTHON) -m pytest -m "not slow" tests

# the browser test of `factorion serve` (tests/test_serve_browser.py) needs Chromium; it skips without
APT := $(if $(filter 0,$(shell id -u)),,sudo -n) apt-get
browser:
	@command -v chromedriver >/dev/null || ($(APT) update -qq && $(APT) install -y -qq chromium chromium-driver) \
		|| echo "no browser: the browser test will skip"

# the web page on http://127.0.0.1:8000 (PORT=...); builds may use the policy of make finetune (or of
# make pretrain) when there is one, or CHECKPOINT=...
SERVE_CKPT = $(or $(CHECKPOINT),$(firstword $(wildcard models/ppo/finetune/policy.pt models/bc/last.ckpt)))
serve: $(STAMP)
	$(PYTHON) -m factorion.cli serve --port $(or $(PORT),8000) $(if $(SERVE_CKPT),--checkpoint $(SERVE_CKPT))

test-all: $(STAMP)
	$(PYTHON) -m pytest tests

lint: $(STAMP)
	$(BIN)/ruff check factorion pipeline tests benchmarks

bench: $(STAMP)
	$(PYTHON) -m benchmarks

# make data                       -> network sources when reachable + the embedded sample
# make data BLUEPRINTS=../shared/blueprints   -> also read a folder of .txt strings
data: $(STAMP)
	$(PYTHON) -m pipeline.run --out $(DATA) $(if $(BLUEPRINTS),--blueprints $(BLUEPRINTS))

# planner demonstrations (families x levels 1-5 x sizes 11, 16) in the dataset's schema; make pretrain mixes
# them with $(DATA)'s mined rows (--demo-share, default 0.5)
DEMOS   ?= data/demos
demos: $(STAMP)
	$(PYTHON) -m pipeline.demos --out $(DEMOS) --per-cell $(or $(PER_CELL),24)

# The defaults were chosen at equal wall time on held-out results (docs/learned.md): the cpu preset
# (batch 256, lr 1e-3) beat small; make data's level-3/4 rows (the 36-99-step level-5 windows would
# take most of the samples) mixed with make demos' planner demonstrations (70 % of the episodes).
pretrain: $(STAMP)
	$(PYTHON) -m factorion.train.pretrain --data $(DATA) --data-levels 3 4 --demos $(DEMOS) --demo-share 0.7 \
		--max-minutes $(or $(MINUTES),20) --preset $(or $(PRESET),cpu) --batch-size 256 --lr 1e-3

# PPO held closer to its starting policy (KL weight 0.3 -> 0.1 instead of 0.05 -> 0) and trained at the
# temperature the searches sample at (0.7, not 0.5): at equal wall time (15 min from the same checkpoint,
# docs/learned.md) it kept level 5 (0.86 on tuning seeds; ppo.Args' own defaults: 0.77).
finetune: $(STAMP)
	$(PYTHON) -m factorion.train.finetune --init models/bc/last.ckpt --minutes $(or $(MINUTES),30) \
		--bc-kl-coef 0.3 --bc-kl-coef-end 0.1 --temperature 0.7

# The shipped policy (factorion/policy/default.pt, what `factorion build` runs by default), from scratch
# (~5 h on 2 cores): 11x11 planner demonstrations (10,640 over levels 1-5 + 25,200 over levels 3-5),
# make data's level-3/4 mined rows when $(DATA) holds them (make data BLUEPRINTS=../shared/blueprints
# first); stage 1: 39 min of BC of the cpu preset, then 4 DAgger rounds (256 tasks each) in the last 40 %;
# stage 2: 70 min from stage 1 at lr 5e-4, 7 DAgger rounds with re-planned labels, 60 % of their tasks
# from the families that fail most (underground, assembler2, tree2); stage 3: 60 + 35 + 65 min of DAgger
# with accepted moves (the policy's own edit kept where the planner finds it as short), half the tasks at
# level 5, half from tree2 and underground, the later parts on new task seeds; exported in half precision.
POLICY_DEMOS ?= data/policy-demos
POLICY_FAMILIES := underground assembler2 tree2 underground assembler2 tree2 belt splitter smelting assembler1
# what stages 2 and 3 share: the same data, DAgger rounds of 256 tasks at half of the episodes
POLICY_DAGGER = --data $(or $(POLICY_DATA),$(DATA)) --data-levels 3 4 --demos $(POLICY_DEMOS) --demo-share 0.7 \
	--batch-size 256 --threads 2 --workers 1 --dagger-tasks 256 --dagger-weight 0.5 --val-every 400 --logger csv
POLICY_FAMILIES3 := tree2 tree2 tree2 underground underground assembler2 belt splitter smelting assembler1
policy: $(STAMP)
	$(PYTHON) -m pipeline.demos --out $(POLICY_DEMOS)/levels-1-5 --sizes 11 --per-cell 300 --val-per-cell 4 --workers 2
	$(PYTHON) -m pipeline.demos --out $(POLICY_DEMOS)/levels-3-5 --sizes 11 --levels 3 4 5 --per-cell 1200 \
		--val-per-cell 0 --workers 2
	$(PYTHON) -m factorion.train.pretrain --data $(or $(POLICY_DATA),$(DATA)) --data-levels 3 4 \
		--demos $(POLICY_DEMOS) --demo-share 0.7 --preset cpu --batch-size 256 --lr 1e-3 --threads 2 \
		--workers 1 --max-minutes $(or $(MINUTES),65) --dagger-rounds 4 --dagger-share 0.4 --dagger-tasks 256 \
		--dagger-weight 0.3 --val-every 400 --out models/policy --logger csv
	$(PYTHON) -m factorion.train.pretrain $(POLICY_DAGGER) --init models/policy/last.ckpt --lr 5e-4 \
		--max-minutes $(or $(MINUTES2),70) --dagger-rounds 7 --dagger-share 0.9 \
		--families $(POLICY_FAMILIES) --out models/policy-stage2
	$(PYTHON) -m factorion.train.pretrain $(POLICY_DAGGER) --init models/policy-stage2/last.ckpt --lr 5e-4 \
		--max-minutes $(or $(MINUTES3),60) --dagger-rounds 5 --dagger-share 0.95 \
		--dagger-levels 3 4 5 5 --dagger-accept --families $(POLICY_FAMILIES3) --out models/policy-stage3
	$(PYTHON) -m factorion.train.pretrain $(POLICY_DAGGER) --init models/policy-stage3/last.ckpt --lr 3e-4 \
		--max-minutes $(or $(MINUTES3B),35) --dagger-rounds 3 --dagger-share 0.95 \
		--dagger-levels 3 4 5 5 --dagger-accept --dagger-seed0 1300002048 --families $(POLICY_FAMILIES3) \
		--out models/policy-stage3b
	$(PYTHON) -m factorion.train.pretrain $(POLICY_DAGGER) --init models/policy-stage3b/last.ckpt --lr 3e-4 \
		--max-minutes $(or $(MINUTES3C),65) --dagger-rounds 5 --dagger-share 0.95 \
		--dagger-levels 3 4 5 5 --dagger-accept --dagger-seed0 1300002816 --families $(POLICY_FAMILIES3) \
		--out models/policy-stage3c
	$(PYTHON) -m factorion.train.export models/policy-stage3c/last.ckpt --note "make policy"

evaluate: $(STAMP)
	$(PYTHON) -m factorion.evaluate --agents random,planner,build,planner+policy --out reports/eval

# The whole path on the embedded default (factorion/samples + procedural tasks), in minutes.
DEMO_OUT := reports/demo
demo: $(STAMP)
	@mkdir -p $(DEMO_OUT)
	$(PYTHON) -m pipeline.run --out data/demo --sizes 11 --samples 8
	$(PYTHON) -m factorion.train.pretrain --data data/demo --out models/demo/bc --preset cpu --batch-size 256 \
		--lr 1e-3 --max-minutes 3
	$(PYTHON) -m factorion.train.finetune --init models/demo/bc/last.ckpt --out models/demo/ppo --run demo --minutes 4
	$(PYTHON) -m factorion.evaluate --sizes 11 --levels 1,3,5 --n-seeds 1 --n-mined 5 --data data/demo \
		--out $(DEMO_OUT) --agents random,planner,build --build-budget 5 --players 0 --policy-samples 8 \
		--checkpoint bc=models/demo/bc/last.ckpt --checkpoint ppo=models/demo/ppo/demo/policy.pt
	$(BIN)/factorion build data/tasks/gears.txt --checkpoint models/demo/ppo/demo/policy.pt --budget 20 \
		-o $(DEMO_OUT)/build.png | tee $(DEMO_OUT)/build.txt
	@echo
	@echo "demo outputs:"
	@echo "  dataset        data/demo (card: data/demo/card.md, samples: data/demo/samples.png)"
	@echo "  BC checkpoint  models/demo/bc/last.ckpt (logs: models/demo/bc)"
	@echo "  PPO policy     models/demo/ppo/demo/policy.pt (metrics: models/demo/ppo/demo/metrics.csv)"
	@echo "  report         $(DEMO_OUT)/report.md, $(DEMO_OUT)/results.csv, $(DEMO_OUT)/bars.png, $(DEMO_OUT)/best_worst.png"
	@echo "  build          $(DEMO_OUT)/build.png and the blueprint string in $(DEMO_OUT)/build.txt"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

from eval_framework.cli import run

run()

from eval_framework.entry import run

run()

"""`pip install` of this repository plus one extra, into a fresh virtualenv, gives a working adapter:
the memory library as a package, outside this checkout, on DynamoDB Local."""

import os
import subprocess
import sys
import textwrap
import uuid

import pytest

from frameworks import LONG_TERM_TABLE, ROOT, SESSIONS_TABLE

pytestmark = pytest.mark.slow

INSTALL_SECONDS = 240

SCRIPT = textwrap.dedent("""
    import importlib.resources, importlib.util, sys
    import durable_memory
    from durable_memory.adapters.langchain import DurableChatMessageHistory
    from langchain_core.messages import AIMessage, HumanMessage

    memory = durable_memory.connect(sessions_table=sys.argv[1], long_term_table=sys.argv[2])
    DurableChatMessageHistory(memory, user_id=sys.argv[3], session_id="s").add_messages(
        [HumanMessage("Hello, I am Ada."), AIMessage("Nice to meet you.")])
    read = DurableChatMessageHistory(memory, user_id=sys.argv[3], session_id="s").messages
    memory.erase_user(sys.argv[3])
    try:
        import durable_memory.adapters.strands
    except ImportError as error:
        strands = str(error)
    print(durable_memory.__version__, (importlib.resources.files("durable_memory") / "py.typed").is_file())
    print([m.content for m in read])
    print(strands)
    print([name for name in ("strands", "agents", "aws_lambda_powertools", "anthropic", "agent", "memory")
           if importlib.util.find_spec(name)])
""")


def test_the_package_with_one_extra_installs_into_a_fresh_virtualenv_and_works(tmp_path, tables):
    # Given a fresh virtualenv (without a pip of its own: this one installs into it, as pip --python
    # does), and the environment without this checkout on its path
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True,
                   timeout=INSTALL_SECONDS)
    python = str(tmp_path / "venv" / "bin" / "python")
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    # When the repository is installed with the LangChain extra, and a script outside it uses the adapter
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--disable-pip-version-check",
                    f"{ROOT}[langchain]"], check=True, timeout=INSTALL_SECONDS, env=env, cwd=tmp_path)
    (tmp_path / "use.py").write_text(SCRIPT)
    run = subprocess.run([python, "use.py", SESSIONS_TABLE, LONG_TERM_TABLE, f"user-{uuid.uuid4().hex[:12]}"],
                         capture_output=True, text=True, check=True, timeout=60, env=env, cwd=tmp_path)
    version, conversation, strands, present = run.stdout.splitlines()
    # Then it is the typed, versioned package, and the history went to DynamoDB and back
    assert version == "0.1.0 True"
    assert conversation == "['Hello, I am Ada.', 'Nice to meet you.']"
    # And another framework's adapter says which extra it needs, and nothing else came along
    assert strands == 'the Strands adapter needs its extra: pip install "durable-memory[strands]"'
    assert present == "[]"

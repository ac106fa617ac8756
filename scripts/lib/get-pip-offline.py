# Bootstrap of pip for ansible-test's virtual environments, in place of the get-pip.py that
# ansible-test downloads from a host outside the package registries (scripts/testenv.sh copies
# this file to ~/.ansible/test/cache/get_pip_VERSION.py, where ansible-test looks first).
# ansible-test runs it as `python get_pip.py [--no-setuptools] [--no-wheel] PIP OPTIONS... pip==X`
# in a venv made without pip: install the pip bundled with Python (ensurepip, no network), then
# let that pip install what ansible-test asked for from the package index.
import subprocess
import sys

subprocess.check_call([sys.executable, '-m', 'ensurepip', '--default-pip'], stdout=subprocess.DEVNULL)
args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
subprocess.check_call([sys.executable, '-m', 'pip', 'install'] + args)

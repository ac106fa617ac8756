# -*- coding: utf-8 -*-
# Copyright: imagebuilder authors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0.txt)
"""The action of every module of this collection: runs the module's binary built for the machine
of the host that runs the task. plugins/action/NAME.py of each module is a subclass of
BinaryModuleAction; the module is the one the task names (image_build, image_family, image_promote,
image_manifest).

A module is a compiled Go program, one per platform, in the collection's binaries/ directory
(binaries/linux_amd64/NAME, binaries/linux_arm64/NAME, their SHA-256 in binaries/SHA256SUMS);
plugins/modules/NAME.py holds only its documentation and argument spec.

A binary module would be copied to the host on every task (27 MiB). Instead, this action keeps
one copy per content hash in a cache directory on the host, ~/.cache/imagebuilder/modules/SHA256/
of the user that runs the module (the `imagebuilder_module_cache` variable changes it):

1. One round trip asks the host for its machine (`uname -sm`), checks that the cached binary for
   that machine exists and has the expected SHA-256, and if so executes it right away with the
   options on standard input (nothing is written on the host).
2. Only when the binary is missing or does not match its hash, a second round trip sends it on
   standard input to a script that writes it under a temporary name in the cache, checks its
   SHA-256, and renames it into place (plays that race each write their own temporary file; the
   rename is atomic), then step 1 runs again.

Everything goes through the task's own connection with become, so delegate_to and become apply
(the cache is then the become user's). Check mode and diff are the module's; with `async` the
options go to a file in the task's temporary directory and ansible-core's async_wrapper runs the
cached binary through a link there (it then removes that directory, never the cache).
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shlex

from ansible.module_utils.common.text.converters import to_bytes
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible.utils.vars import merge_hash
from ansible.vars.clean import remove_internal_keys

try:  # ansible-core >= 2.19: the module serialization profiles
    from ansible.module_utils.common.json import Direction, get_module_encoder

    _ENCODER = get_module_encoder('legacy', Direction.CONTROLLER_TO_MODULE)
    _PROFILE = ('legacy',)
except ImportError:  # ansible-core < 2.19
    from ansible.module_utils.common.json import AnsibleJSONEncoder as _ENCODER
    _PROFILE = ()

display = Display()

# binaries/ of this collection: plugins/plugin_utils/binary_module.py -> ../../binaries
_BIN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'binaries')

# `uname -m` -> the directory of binaries/ holding the binary for that machine.
_MACHINES = {
    'x86_64': 'linux_amd64',
    'amd64': 'linux_amd64',
    'aarch64': 'linux_arm64',
    'arm64': 'linux_arm64',
}

_DEFAULT_CACHE = '~/.cache/imagebuilder/modules'
_RAN = re.compile(r'^IMAGEBUILDER-RAN (\S+) (.*)\n', re.M)
_SHA256 = re.compile(r'^[0-9a-f]{64}$')


def _checksums():
    """binaries/SHA256SUMS as {'linux_amd64/NAME': sha256}."""
    sums = {}
    with open(os.path.join(_BIN_DIR, 'SHA256SUMS')) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2 and _SHA256.match(parts[0]):
                sums[parts[1].lstrip('*')] = parts[0]
    return sums


def _shell_path(path):
    """A shell word for path, with a leading ~/ meaning the home directory of the user that runs it."""
    if path == '~':
        return '"$HOME"'
    if path.startswith('~/'):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


class BinaryModuleAction(ActionBase):
    """Runs the binary of the module the task names, cached on the host (see the module docstring)."""

    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        result = super(BinaryModuleAction, self).run(tmp, task_vars)
        del tmp  # tmp no longer has any effect
        task_vars = task_vars or {}

        action = getattr(self._task, 'resolved_action', None) or self._task.action
        name = action.rpartition('.')[2]
        try:
            sums = _checksums()
        except OSError as e:
            result.update(failed=True, msg='%s: reading the module checksums in %s: %s' % (name, _BIN_DIR, e))
            return result
        binaries = {}
        for machine, platform in _MACHINES.items():
            key = '%s/%s' % (platform, name)
            if key in sums:
                binaries[machine] = (platform, sums[key])

        cache = task_vars.get('imagebuilder_module_cache') or _DEFAULT_CACHE
        cache = self._templar.template(cache)
        if self._task.async_val and not self._connection.has_native_async:
            return merge_hash(result, self._run_async(name, binaries, cache, task_vars))

        module_args = self._task.args.copy()
        self._update_module_args(name, module_args, task_vars)
        args_data = to_bytes(json.dumps(module_args, cls=_ENCODER))
        display.vvv('%s: the binary runs from the cache %s on the host when it is there and matches its SHA-256' % (name, cache),
                    host=self._play_context.remote_addr)
        env = self._compute_environment_string()

        res = None
        for attempt in range(2):
            res = self._low_level_execute_command(self._run_script(name, binaries, cache, env, run=True),
                                                  sudoable=True, in_data=args_data)
            state = self._state(res)
            if state is None:  # the module ran
                ran = _RAN.search(res.get('stderr', ''))
                if ran:
                    res['stderr'] = res['stderr'][:ran.start()] + res['stderr'][ran.end():]
                    platform = binaries[ran.group(1)][0]
                    display.vvv('Using module file %s' % os.path.join(_BIN_DIR, platform, name))
                    display.vvv('%s: ran the cached copy %s on the host' % (name, ran.group(2)), host=self._play_context.remote_addr)
                break
            failure = self._install(name, binaries, cache, state, attempt)
            if failure:
                result.update(failure)
                return result
        else:
            result.update(failed=True, msg='%s: the module binary was installed in the cache but does not run: %s'
                          % (name, self._output(res)))
            return result

        data = self._parse_returned_data(res, *_PROFILE)
        remove_internal_keys(data)
        return merge_hash(result, data)

    # --- the scripts -----------------------------------------------------------------------

    def _cached(self, name, binaries, cache):
        """Shell code that sets m (the machine), h (the expected hash) and f (the cached binary)."""
        cases = ['"Linux %s") h=%s ;;' % (machine, digest) for machine, (_platform, digest) in sorted(binaries.items())]
        return ('m=$(uname -sm 2>/dev/null) || m=unknown\n'
                'case "$m" in\n%s\n*) printf "UNSUPPORTED %%s\\n" "$m"; exit 0 ;;\nesac\n'
                'command -v sha256sum >/dev/null 2>&1 || { echo NOSHA; exit 0; }\n'
                'd=%s/$h\nf=$d/%s\n' % ('\n'.join(cases), _shell_path(cache), shlex.quote(name)))

    def _run_script(self, name, binaries, cache, env, run):
        """Machine check and cache check in one; run=True then executes the verified binary."""
        script = self._cached(name, binaries, cache)
        script += 'if [ -f "$f" ] && [ "$(sha256sum "$f" | cut -d" " -f1)" = "$h" ]; then\n'
        if run:
            script += '  printf "IMAGEBUILDER-RAN %s %s\\n" "${m#* }" "$f" >&2\n'
            script += '  exec env %s "$f"\n' % env.strip()
        else:
            script += '  printf "HIT %s\\n" "$m"; exit 0\n'
        script += 'fi\nprintf "MISS %s\\n" "$m"\n'
        return script.rstrip('\n')

    def _install_script(self, name, binaries, cache):
        """Writes standard input into the cache under a temporary name, checks it, renames it."""
        script = self._cached(name, binaries, cache)
        script += ('umask 077\nmkdir -p "$d"\nchmod 0700 "$d"\n'
                   't=$(mktemp "$d/.%s.XXXXXX")\n'
                   'trap \'rm -f "$t"\' EXIT\n'
                   'cat > "$t"\n'
                   's=$(sha256sum "$t" | cut -d" " -f1)\n'
                   'if [ "$s" != "$h" ]; then echo "checksum mismatch: got $s, want $h" >&2; exit 1; fi\n'
                   'chmod 0700 "$t"\nmv -f "$t" "$f"\ntrap - EXIT\necho "INSTALLED $f"' % name)
        return script

    # --- the steps -------------------------------------------------------------------------

    @staticmethod
    def _output(res):
        return (res.get('stdout', '') + res.get('stderr', '')).strip()

    def _state(self, res):
        """None when the module ran; else the script's word and the machine: ('MISS', 'x86_64')."""
        out = res.get('stdout', '').strip()
        first = out.split('\n', 1)[0] if out else ''
        words = first.split()
        if words and words[0] in ('MISS', 'HIT', 'UNSUPPORTED', 'NOSHA') and not out.startswith('{'):
            return words[0], words[1:]
        return None

    def _install(self, name, binaries, cache, state, attempt):
        """Handles a state other than "ran": copies the binary on a miss; returns a failure or None."""
        word, rest = state
        if word == 'UNSUPPORTED':
            return dict(failed=True, msg='%s runs on Linux hosts (x86_64 or aarch64); this host is %s'
                        % (name, ' '.join(rest) or 'unknown (uname -sm failed)'))
        if word == 'NOSHA':
            return dict(failed=True, msg='%s needs sha256sum (coreutils or busybox) on the host to check its binary' % name)
        if attempt > 0:
            return dict(failed=True, msg='%s: the binary just installed in the cache is not found or does not match its checksum' % name)
        machine = rest[-1] if rest else ''
        platform, digest = binaries[machine]
        local = os.path.join(_BIN_DIR, platform, name)
        display.vvv('%s: copying %s (sha256 %s) into the cache on the host' % (name, local, digest), host=self._play_context.remote_addr)
        with open(local, 'rb') as f:
            data = f.read()
        res = self._low_level_execute_command(self._install_script(name, binaries, cache), sudoable=True, in_data=data)
        if res.get('rc') != 0 or 'INSTALLED ' not in res.get('stdout', ''):
            return dict(failed=True, msg='%s: copying the module binary into the cache %s on the host failed: %s'
                        % (name, cache, self._output(res)))
        return None

    def _ensure_cached(self, name, binaries, cache):
        """Makes sure the cache holds the binary for the host's machine; returns a failure or None."""
        for attempt in range(2):
            res = self._low_level_execute_command(self._run_script(name, binaries, cache, '', run=False), sudoable=True)
            state = self._state(res)
            if state is None:
                return dict(failed=True, msg='%s: checking the module cache on the host failed: %s' % (name, self._output(res)))
            if state[0] == 'HIT':
                return None
            failure = self._install(name, binaries, cache, state, attempt)
            if failure:
                return failure
        return dict(failed=True, msg='%s: the module binary could not be cached on the host' % name)

    def _run_async(self, name, binaries, cache, task_vars):
        """async: ansible-core's async_wrapper runs the cached binary through a link in the task's
        temporary directory, with the options in a file there; it removes that directory (not the
        cache) when the job ends."""
        failure = self._ensure_cached(name, binaries, cache)
        if failure:
            return failure
        tmpdir = self._connection._shell.tmpdir or self._make_tmp_path()
        module_args = self._task.args.copy()
        self._update_module_args(name, module_args, task_vars)
        args_path = self._connection._shell.join_path(tmpdir, 'args')
        self._transfer_data(args_path, json.dumps(module_args, cls=_ENCODER))
        link = self._connection._shell.join_path(tmpdir, name)

        async_dir = self.get_shell_option('async_dir', default='~/.ansible_async')
        self._task.environment.append({'ANSIBLE_ASYNC_DIR': async_dir})
        try:
            env = self._compute_environment_string()
        finally:
            self._task.environment.pop()
        wrapper_bits, wrapper_path = self._configure_module(module_name='ansible.legacy.async_wrapper', module_args={}, task_vars=task_vars)
        wrapper_remote = self._connection._shell.join_path(tmpdir, self._connection._shell.get_remote_filename(wrapper_path))
        self._transfer_data(wrapper_remote, wrapper_bits.b_module_data)
        self._fixup_perms2([tmpdir, args_path, wrapper_remote], self._get_remote_user())

        jid = 'j%d' % secrets.randbelow(999999999999)
        interpreter = wrapper_bits.shebang.replace('#!', '').strip()
        script = self._cached(name, binaries, cache) + 'ln -s "$f" %s\nexec env %s %s %s %s %s %s %s\n' % (
            shlex.quote(link), env.strip(), interpreter, shlex.quote(wrapper_remote), jid, self._task.async_val,
            shlex.quote(link), shlex.quote(args_path))
        res = self._low_level_execute_command(script.rstrip('\n'), sudoable=True)
        data = self._parse_returned_data(res, *_PROFILE)
        data.pop('_ansible_suppress_tmpdir_delete', None)  # async_wrapper removes the directory itself
        remove_internal_keys(data)
        self._connection._shell.tmpdir = None  # async_wrapper owns it now
        data['changed'] = True
        return data

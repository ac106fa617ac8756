# -*- coding: utf-8 -*-
# Part of imagebuilder (https://github.com/imagebuilder/imagebuilder).
"""Runs the image_build binary built for the machine of the host that runs the task.

The collection carries one binary per platform: plugins/modules/image_build (linux/amd64, the
module users name and whose documentation ansible-doc shows) and
plugins/modules/linux_arm64/image_build (linux/arm64). ansible-core transfers a binary module as
it is, so this action asks the target for its machine first, through the task's own connection
(delegate_to and become apply), and executes the matching module. Everything else (arguments,
check mode, diff, async, no_log) is ansible-core's normal handling of a module.
"""
from __future__ import annotations

from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash

# `uname -m` -> the module subdirectory holding the binary ('' is plugins/modules itself).
_MACHINES = {
    'x86_64': '',
    'amd64': '',
    'aarch64': 'linux_arm64',
    'arm64': 'linux_arm64',
}


class ActionModule(ActionBase):

    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # tmp no longer has any effect

        res = self._low_level_execute_command('uname -sm', sudoable=False)
        words = res.get('stdout', '').split()
        if res.get('rc') != 0 or len(words) != 2:
            result.update(failed=True, msg='image_build: cannot tell the machine of the host: `uname -sm` said %r (rc=%s)'
                          % ((res.get('stdout', '') + res.get('stderr', '')).strip(), res.get('rc')))
            return result
        system, machine = words
        subdir = _MACHINES.get(machine)
        if system != 'Linux' or subdir is None:
            result.update(failed=True, msg='image_build runs on Linux hosts (x86_64 or aarch64); this host is %s %s'
                          % (system, machine))
            return result

        # The FQCN this task resolved to (imagebuilder.images.image_build), so a renamed or
        # redirected collection still finds its own binaries.
        action = getattr(self._task, 'resolved_action', None) or self._task.action
        collection, _, name = action.rpartition('.')
        module = action if not subdir else '%s.%s.%s' % (collection, subdir, name)

        wrap_async = self._task.async_val and not self._connection.has_native_async
        result = merge_hash(result, self._execute_module(module_name=module, task_vars=task_vars, wrap_async=wrap_async))

        if not wrap_async:
            # remove a temporary path we created
            self._remove_tmp_path(self._connection._shell.tmpdir)

        return result

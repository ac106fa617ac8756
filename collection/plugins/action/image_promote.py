# -*- coding: utf-8 -*-
# Copyright: imagebuilder authors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0.txt)
"""Runs the image_promote binary built for the machine of the host that runs the task, from a cache on
the host (plugins/plugin_utils/binary_module.py, shared by every module of the collection);
plugins/modules/image_promote.py holds only its documentation and argument spec."""
from __future__ import annotations

from ansible_collections.imagebuilder.images.plugins.plugin_utils.binary_module import BinaryModuleAction


class ActionModule(BinaryModuleAction):
    """The image_promote module's action."""


def main():
    """For linters. ansible-lint's args rule imports the plugin that a task resolves to (this
    action plugin, as for ansible-core) and calls its main() with AnsibleModule patched, as it
    does for a module: the module's own main() declares the argument spec (generated from the
    JSON Schema), so the task's options are checked against it. Never called by ansible-core."""
    from ..modules.image_promote import main as module_main  # pylint: disable=import-outside-toplevel,relative-beyond-top-level
    module_main()

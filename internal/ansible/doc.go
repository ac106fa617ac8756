// Package ansible is the binary-module protocol shared by every imagebuilder Ansible module.
//
// ansible-core runs a binary module as `MODULE ARGS_FILE`, where ARGS_FILE holds one flat JSON
// object: the task's options plus `_ansible_*` keys that ansible-core adds (a few more in most
// releases). The module answers with exactly one JSON object on stdout; ansible-core ignores the
// exit status once that object parses, so `failed` is always set explicitly.
//
// This package reads the arguments (from the file, from the `ANSIBLE_MODULE_ARGS` wrapper used
// when testing by hand, or from standard input when no file is given), splits the `_ansible_*`
// keys leniently from the user's options, derives the modules' argument spec from the generated
// JSON Schema (types, required, defaults, choices, no_log, the rules between options), and writes
// the response: secrets masked in every string, panics turned into a failed result, and nothing
// but the response on stdout. From the same spec and a module's hand-written prose it renders the
// module's documentation (ModuleDoc: the collection's Python documentation module with its
// argument spec, or a sidecar file; command gendoc, run by `make schema`).
//
// A module's main is one line:
//
//	func main() { os.Exit(ansible.Main(ansible.Module{Name: "image_build", Spec: spec, Run: run})) }
package ansible

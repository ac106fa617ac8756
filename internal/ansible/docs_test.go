package ansible

import (
	"strings"
	"testing"
)

func TestCheckOptions(t *testing.T) {
	spec := Spec{
		"src": {Type: "dict", Required: true, Options: Spec{
			"url":      {Type: "str", Required: true},
			"version":  {Type: "str", Default: "HEAD"},
			"password": {Type: "str", NoLog: true},
		}},
		"images": {Type: "list", Elements: "dict", Options: Spec{"tag": {Type: "str"}}},
		"args":   {Type: "dict", Values: "str"},
		"plats":  {Type: "list", Elements: "str"},
		"flag":   {Type: "bool"},
	}
	good := `
DOCUMENTATION:
  module: m
  options:
    src:
      description: d
      type: dict
      required: true
      suboptions:
        url: {description: d, required: true}
        version: {description: d, type: str, default: HEAD}
        password: {description: d, type: str, no_log: true}
    images:
      description: [d]
      type: list
      elements: dict
      suboptions:
        tag: {description: d, type: str}
    args: {description: d, type: dict}
    plats: {description: d, type: list, elements: str}
    flag: {description: d, type: bool}
EXAMPLES: |
  - m: {}
RETURN: {}
`
	sc, err := ParseSidecar([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if p := sc.CheckOptions(spec); len(p) != 0 {
		t.Fatalf("problems in a matching documentation: %q", p)
	}
	for _, tt := range []struct{ from, to, want string }{
		{"        version: {description: d, type: str, default: HEAD}\n", "", "src.version: in the schema, not documented"},
		{"    flag: {description: d, type: bool}\n", "    flag: {description: d, type: bool}\n    extra: {description: d}\n", "extra: documented, not in the schema"},
		{"flag: {description: d, type: bool}", "flag: {description: d, type: str}", "flag: documented type str, schema type bool"},
		{"flag: {description: d, type: bool}", "flag: {description: '', type: bool}", "flag: no description"},
		{"plats: {description: d, type: list, elements: str}", "plats: {description: d, type: list}", `plats: documented elements "", schema elements "str"`},
		{"args: {description: d, type: dict}", "args: {description: d, type: dict, elements: str}", "args: elements documented for a dict"},
		{"url: {description: d, required: true}", "url: {description: d}", "src.url: documented required false, schema required true"},
		{"password: {description: d, type: str, no_log: true}", "password: {description: d, type: str}", "src.password: documented no_log false, schema writeOnly true"},
		{"default: HEAD}", "default: main}", `src.version: documented default "main", schema default "HEAD"`},
		{"        tag: {description: d, type: str}\n", "", "images: suboptions not documented"},
		{"args: {description: d, type: dict}", "args: {description: d, type: dict, suboptions: {}}", "args: suboptions documented, none in the schema"},
		{"    flag: {description: d, type: bool}", "    flag: [d]", "flag: the documentation is not a mapping"},
	} {
		doc := strings.Replace(good, tt.from, tt.to, 1)
		if doc == good {
			t.Fatalf("mutation %q did not apply", tt.from)
		}
		sc, err := ParseSidecar([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		problems := sc.CheckOptions(spec)
		if strings.Join(problems, "\n") != tt.want {
			t.Errorf("%s -> %s:\ngot  %q\nwant %q", tt.from, tt.to, problems, tt.want)
		}
	}
}

func TestParseSidecarErrors(t *testing.T) {
	for _, tt := range []struct{ doc, want string }{
		{"EXAMPLES: x\n", "no DOCUMENTATION"},
		{"DOCUMENTATION: {}\nEXTRA: 1\n", "unknown field"},
		{"DOCUMENTATION: [\n", "parsing the documentation"},
	} {
		if _, err := ParseSidecar([]byte(tt.doc)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want %q", tt.doc, err, tt.want)
		}
	}
}

package main

import (
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/imagebuilder/imagebuilder/internal/testenv"
)

// conformanceFloor is how many checks of the OCI distribution-spec conformance suite (the
// version of go.mod's tool directive, v0.0.0-20260831232431-97274622c111) `registry serve`
// passed when last measured: 857 of 860, none failed; the anonymous mount of a sha512 blob is
// skipped (answered with an upload session) and upload cancel is disabled by the suite's
// defaults (it passes when enabled). distribution v3.1.2's own registry binary passes 743
// of 852 under the same suite (it fails sha512 digests, the referrers API and subjects).
const conformanceFloor = 857

// junitReport is what the test reads of the suite's junit.xml.
type junitReport struct {
	Tests    int `xml:"tests,attr"`
	Failures int `xml:"failures,attr"`
	Errors   int `xml:"errors,attr"`
	Skipped  int `xml:"skipped,attr"`
	Disabled int `xml:"disabled,attr"`
	Suites   []struct {
		Cases []struct {
			Name   string `xml:"name,attr"`
			Status string `xml:"status,attr"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func (j junitReport) passed() int { return j.Tests - j.Failures - j.Errors - j.Skipped - j.Disabled }

// TestRegistryServeConformance runs the OCI distribution-spec conformance suite (pull, push,
// content discovery, content management, with the suite's default data: sha512, referrers,
// subjects...) against `imagebuilder registry serve`, once serving only its own storage and
// once with an upstream for every repository, and checks that at least conformanceFloor
// checks pass each time.
func TestRegistryServeConformance(t *testing.T) {
	env := testenv.Require(t, testenv.Registry)
	suite := filepath.Join(t.TempDir(), "conformance")
	// Through the module cache (go.mod's tool directive pins it): no network once cached.
	if out, err := exec.Command("go", "build", "-o", suite, "github.com/opencontainers/distribution-spec/conformance").CombinedOutput(); err != nil {
		t.Fatalf("building the conformance suite: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"local", nil},
		{"with-upstream", []string{"--upstream", "http://" + testenv.StartRegistryProxy(t, env[testenv.Registry]).Host}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ready, stderr := serveRegistry(t, append(tc.args, "--log-level", "error")...)
			results := t.TempDir()
			cmd := exec.Command(suite)
			cmd.Dir = results
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "OCI_") {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			cmd.Env = append(cmd.Env, "OCI_REGISTRY="+ready.Listen, "OCI_TLS=disabled", "OCI_RESULTS_DIR="+results, "OCI_LOG=error")
			out, err := cmd.CombinedOutput()
			data, rerr := os.ReadFile(filepath.Join(results, "junit.xml"))
			if rerr != nil {
				t.Fatalf("the suite wrote no junit.xml (%v): %v\n%s", err, rerr, out)
			}
			var rep junitReport
			if err := xml.Unmarshal(data, &rep); err != nil {
				t.Fatalf("reading junit.xml: %v", err)
			}
			var failed []string
			for _, s := range rep.Suites {
				for _, c := range s.Cases {
					if c.Status != "passed" && c.Status != "skipped" && c.Status != "disabled" {
						failed = append(failed, c.Name)
					}
				}
			}
			sort.Strings(failed)
			t.Logf("OCI conformance: %d of %d checks passed (%d failed, %d skipped, %d disabled); distribution v3.1.2's registry: 743 of 852",
				rep.passed(), rep.Tests, rep.Failures+rep.Errors, rep.Skipped, rep.Disabled)
			if rep.passed() < conformanceFloor {
				t.Errorf("%d checks passed, fewer than the %d measured; failing:\n  %s\nsuite output:\n%s\nregistry log:\n%s",
					rep.passed(), conformanceFloor, strings.Join(failed, "\n  "), out, stderr)
			} else if rep.passed() > conformanceFloor {
				t.Logf("more checks pass than conformanceFloor (%d): raise it", conformanceFloor)
			}
		})
	}
}

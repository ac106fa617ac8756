package redact

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://bob:R3gPW@registry.io/v2/", "https://registry.io/v2/"},
		{"https://ghp_abcdefghijkl@github.com/o/r.git", "https://github.com/o/r.git"},
		{"https://h/Dockerfile?token=abc123", "https://h/Dockerfile?token=" + Mask},
		{"https://s3/b/k?X-Amz-Credential=AKIA%2F2026&X-Amz-Signature=deadbeef&flag", "https://s3/b/k?X-Amz-Credential=" + Mask + "&X-Amz-Signature=" + Mask + "&flag"},
		{"https://h/p?a=&b=1", "https://h/p?a=&b=" + Mask},
		{"https://h/p#access_token=xyz&x=1", "https://h/p#access_token=" + Mask + "&x=" + Mask},
		{"https://h/p#section", "https://h/p#section"},
		{"kube-pod://buildkitd-0?namespace=ci&context=prod&token=t", "kube-pod://buildkitd-0?namespace=ci&context=prod&token=" + Mask},
		{"ssh://git@host/o/r.git", "ssh://host/o/r.git"},
		{"ssh://git:pw@host/o/r.git", "ssh://host/o/r.git"},
		{"git@github.com:o/r.git", "github.com:o/r.git"},
		{"git:pw@github.com:o/r.git", "github.com:o/r.git"},
		{"bob:R3gPW@registry.io", "registry.io"},
		{"//:0000@host/x", "//host/x"}, // found by FuzzParseEndpoint
		{"unix:@", "unix:@"},           // nothing after the "@" and no password: not user information
		{"user:pw@://", "://"},
		{"registry.io/team", "registry.io/team"},
		{"/srv/src.tar.gz", "/srv/src.tar.gz"},
		{"file:///srv/repo", "file:///srv/repo"},
		{"tcp://u:p@10.0.0.1:2375", "tcp://10.0.0.1:2375"},
		// Does not parse (bad escape): cleaned as text.
		{"https://u:p@h/%zz?token=t0k", "https://h/%zz?token=" + Mask},
	} {
		if got := URL(tc.in); got != tc.want {
			t.Errorf("URL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRedactorForms(t *testing.T) {
	const user, pass = "bob", `p@ss w/"rd+1`
	r := New()
	r.AddBasic(user, pass)
	basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	js, _ := json.Marshal(pass)
	for _, form := range []string{pass, url.QueryEscape(pass), url.PathEscape(pass), strings.Trim(string(js), `"`), basic} {
		got := r.String("x " + form + " y")
		if got != "x "+Mask+" y" {
			t.Errorf("form %q: got %q", form, got)
		}
	}
	// The username alone is not a secret.
	if got := r.String("user bob"); got != "user bob" {
		t.Errorf("username masked: %q", got)
	}
	var nilR *Redactor
	if nilR.String("x") != "x" || nilR.Error(nil) != nil {
		t.Fatal("nil redactor changed something")
	}
	nilR.Add("x") // must not panic
}

func TestAddURL(t *testing.T) {
	const raw = "https://bob:R3gPW0rd@registry.io/Dockerfile?token=tok-0123456789&ref=main"
	r := New()
	r.AddURL(raw)
	msg := fmt.Sprintf(`Get %q: dial tcp: no such host; token tok-0123456789; pw R3gPW0rd; ref main; %s`, raw, url.QueryEscape(raw))
	got := r.String(msg)
	for _, leak := range []string{"R3gPW0rd", "tok-0123456789", "bob:"} {
		if strings.Contains(got, leak) {
			t.Errorf("%q left in %q", leak, got)
		}
	}
	if !strings.Contains(got, `"https://registry.io/Dockerfile?token=`+Mask+`&ref=`+Mask+`"`) {
		t.Errorf("raw URL not shown in its display form: %q", got)
	}
	if !strings.Contains(got, "ref main") {
		t.Errorf("a short query value was masked everywhere: %q", got)
	}
}

func TestAddAuthorization(t *testing.T) {
	r := New()
	r.AddAuthorization("Bearer eyJhbGciOi.tok")
	r.AddAuthorization("Basic " + base64.StdEncoding.EncodeToString([]byte("u:pw-secret")))
	got := r.String("sent eyJhbGciOi.tok and pw-secret")
	if strings.Contains(got, "eyJ") || strings.Contains(got, "pw-secret") {
		t.Fatalf("got %q", got)
	}
}

func TestMultiLineSecret(t *testing.T) {
	key := "-----BEGIN KEY-----\nAAAAB3NzaC1yc2EAAAADAQAB\nQJ8fRqv7Yx\n-----END KEY-----\n"
	r := New(key)
	var sb strings.Builder
	w := r.Writer(&sb)
	io.WriteString(w, "cat key:\n"+key+"done\n")
	w.Close()
	if strings.Contains(sb.String(), "AAAAB3NzaC1yc2EAAAADAQAB") || strings.Contains(sb.String(), "QJ8fRqv7Yx") {
		t.Fatalf("key lines left in %q", sb.String())
	}
}

func TestError(t *testing.T) {
	base := errors.New("auth with hunter2 failed")
	err := New("hunter2").Error(base)
	if strings.Contains(err.Error(), "hunter2") || !errors.Is(err, base) {
		t.Fatalf("%v", err)
	}
	clean := errors.New("nothing secret")
	if New("hunter2").Error(clean) != clean {
		t.Fatal("an error without secrets was wrapped")
	}
}

func TestAddWhileRunning(t *testing.T) {
	r := New("first-secret")
	if r.String("second-secret") != "second-secret" {
		t.Fatal("unknown secret masked")
	}
	r.Add("second-secret")
	if got := r.String("first-secret second-secret"); got != Mask+" "+Mask {
		t.Fatalf("got %q", got)
	}
}

// TestWriterNeverSplits writes text full of secrets in random chunks, with lines longer than
// the forced-flush size, and checks that no secret gets out, whatever the cuts.
func TestWriterNeverSplits(t *testing.T) {
	secrets := []string{"hunter2-hunter2", "s3cr3t", strings.Repeat("k", 300)}
	r := New(secrets...)
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		var in strings.Builder
		for in.Len() < 3*flushAt {
			switch rng.IntN(4) {
			case 0:
				in.WriteString(secrets[rng.IntN(len(secrets))])
			case 1:
				if round%2 == 0 {
					in.WriteByte('\n')
				}
			default:
				in.WriteString(strings.Repeat("x", rng.IntN(200)))
			}
		}
		var out strings.Builder
		w := r.Writer(&out)
		data := in.String()
		for len(data) > 0 {
			n := min(1+rng.IntN(9000), len(data))
			if _, err := io.WriteString(w, data[:n]); err != nil {
				t.Fatal(err)
			}
			data = data[n:]
		}
		w.Close()
		for _, s := range secrets {
			if strings.Contains(out.String(), s) {
				t.Fatalf("round %d: secret %q left in the output", round, s[:6])
			}
		}
		if want := r.String(in.String()); out.String() != want {
			t.Fatalf("round %d: streamed output differs from masking the whole text", round)
		}
	}
}

func FuzzURL(f *testing.F) {
	for _, s := range []string{"h", "h:5000/x", "u@h", "h/p?a=b", "h#a=b", "%zz", "h\f/x"} {
		f.Add(s)
	}
	const pass, tok = "PwQQsecretQQ", "TkZZtokenZZZZ"
	f.Fuzz(func(t *testing.T, raw string) {
		if strings.ContainsAny(raw, "QZ") {
			return
		}
		for _, u := range []string{
			"https://user:" + pass + "@" + raw + "?token=" + tok,
			"https://" + raw + "?x=1&token=" + tok,
			"https://" + tok + "@" + raw,
			"user:" + pass + "@" + raw,
		} {
			got := URL(u)
			if strings.Contains(got, "QQ") || strings.Contains(got, "ZZ") {
				t.Fatalf("URL(%q) = %q keeps a secret", u, got)
			}
			r := New()
			r.AddURL(u)
			if out := r.String("error: " + u + " failed " + url.QueryEscape(u)); strings.Contains(out, "QQ") || strings.Contains(out, "ZZ") {
				t.Fatalf("AddURL(%q): %q", u, out)
			}
		}
	})
}

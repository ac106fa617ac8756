package dockerfile

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Wrap inserts Dockerfile fragments, as Kolla's header and footer files do: header right after
// every FROM instruction (each stage, so settings such as proxy variables reach every stage
// that runs commands), footer after the last instruction of the stage that is built (target,
// a stage name or index, or the last stage when ""). Everything else stays byte for byte; an
// empty fragment inserts nothing. The result is parsed again.
func Wrap(data []byte, header, footer, target string) ([]byte, error) {
	if header == "" && footer == "" {
		return data, nil
	}
	res, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("parsing Dockerfile: %w", withLine(err))
	}
	type stage struct {
		name          string
		fromEnd, last int // line of the end of the FROM instruction, of the stage's last instruction
	}
	var stages []stage
	for _, n := range res.AST.Children {
		if strings.EqualFold(n.Value, "from") {
			s := stage{fromEnd: n.EndLine, last: n.EndLine}
			if n.Next != nil && n.Next.Next != nil && strings.EqualFold(n.Next.Next.Value, "as") && n.Next.Next.Next != nil {
				s.name = strings.ToLower(n.Next.Next.Next.Value)
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) > 0 {
			stages[len(stages)-1].last = n.EndLine
		}
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("parsing Dockerfile: no FROM instruction")
	}
	built := len(stages) - 1
	if target != "" {
		built = -1
		for i, s := range stages {
			if s.name == strings.ToLower(target) || fmt.Sprint(i) == target {
				built = i
				break
			}
		}
		if built < 0 {
			return nil, fmt.Errorf("target stage %q not found", target)
		}
	}
	after := map[int][]string{} // line -> fragments inserted after it
	if header != "" {
		for _, s := range stages {
			after[s.fromEnd] = append(after[s.fromEnd], header)
		}
	}
	if footer != "" {
		l := stages[built].last
		after[l] = append(after[l], footer)
	}
	var out bytes.Buffer
	lines := bytes.SplitAfter(data, []byte("\n"))
	for i, line := range lines {
		out.Write(line)
		for _, frag := range after[i+1] {
			if len(line) > 0 && line[len(line)-1] != '\n' {
				out.WriteByte('\n')
			}
			out.WriteString(frag)
			if !strings.HasSuffix(frag, "\n") {
				out.WriteByte('\n')
			}
		}
	}
	wrapped := out.Bytes()
	if _, err := parser.Parse(bytes.NewReader(wrapped)); err != nil {
		return nil, fmt.Errorf("parsing the Dockerfile with header and footer: %w", withLine(err))
	}
	return wrapped, nil
}

package plan

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Document is the JSON form of one plan or of plans side by side.
type Document struct {
	Plans []*Plan `json:"plans"`
}

// WriteJSON writes the plans as one indented Document.
func WriteJSON(w io.Writer, plans ...*Plan) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(Document{Plans: plans})
}

// ReadJSON reads what WriteJSON wrote.
func ReadJSON(r io.Reader) (Document, error) {
	var d Document
	err := json.NewDecoder(r).Decode(&d)
	return d, err
}

// WriteText writes the plans as tables for people: the count per tier,
// warnings, the inputs with their basis, and every step with its formula.
// Several plans are shown side by side, one column each; they must come
// from Compute (the same steps in the same order).
func WriteText(w io.Writer, plans ...*Plan) error {
	if len(plans) == 0 {
		return nil
	}
	var b strings.Builder
	first := plans[0]
	conns, _ := first.Value("peak_conns")
	msgs, _ := first.Value("peak_msgs_per_s")
	dau := 0.0
	if len(first.Inputs) > 0 {
		dau = first.Inputs[0].Value
	}
	fmt.Fprintf(&b, "Capacity plan: %s daily active users; at the peak %s connections and %s msg/s\n",
		formatNumber(dau), formatNumber(conns), formatNumber(msgs))

	header := func(title string) {
		line := fmt.Sprintf("\n%-34s", title)
		for _, p := range plans {
			line += fmt.Sprintf(" %16s", p.Label)
		}
		b.WriteString(strings.TrimRight(line, " ") + "\n")
	}
	row := func(name string, values []float64, unit, tail string) {
		line := fmt.Sprintf("  %-32s", name)
		for _, v := range values {
			line += fmt.Sprintf(" %16s", formatNumber(v))
		}
		line += fmt.Sprintf(" %-12s %s", unit, tail)
		b.WriteString(strings.TrimRight(line, " ") + "\n")
	}

	header("NEEDED")
	for i, t := range first.Tiers {
		vals := make([]float64, len(plans))
		for j, p := range plans {
			vals[j] = p.Tiers[i].Count
		}
		row(t.Name, vals, t.Unit, "")
	}

	for _, p := range plans {
		if len(p.Warnings) == 0 {
			continue
		}
		b.WriteString("\nWARNINGS")
		if p.Label != "" {
			b.WriteString(" (" + p.Label + ")")
		}
		b.WriteString("\n")
		for _, s := range p.Warnings {
			b.WriteString("  - " + s + "\n")
		}
	}

	header("INPUTS")
	for i, in := range first.Inputs {
		vals := make([]float64, len(plans))
		basis := in.Basis
		for j, p := range plans {
			vals[j] = p.Inputs[i].Value
			if p.Inputs[i].Basis != in.Basis {
				basis = ""
			}
		}
		if basis == "" { // the plans differ: say why for each
			var parts []string
			for _, p := range plans {
				parts = append(parts, p.Label+": "+p.Inputs[i].Basis)
			}
			basis = strings.Join(parts, "; ")
		}
		row(in.Key, vals, in.Unit, basis)
	}

	section := func(title string, get func(*Plan) []Step) {
		header(title)
		for i, s := range get(first) {
			vals := make([]float64, len(plans))
			tails := make([]string, len(plans))
			same := true
			for j, p := range plans {
				st := get(p)[i]
				vals[j] = st.Value
				tails[j] = "= " + st.Formula
				if st.Note != "" {
					tails[j] += "  (" + st.Note + ")"
				}
				same = same && tails[j] == tails[0]
			}
			tail := tails[0]
			if !same { // the plans differ: each one's
				for j, p := range plans {
					tails[j] = p.Label + ": " + tails[j]
				}
				tail = strings.Join(tails, "; ")
			}
			row(s.Key, vals, s.Unit, tail)
		}
	}
	section("PEAK LOAD", func(p *Plan) []Step { return p.Load })
	for i, t := range first.Tiers {
		section(strings.ToUpper(t.Name), func(p *Plan) []Step { return p.Tiers[i].Steps })
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// formatNumber prints whole numbers and numbers of 100 or more with
// thousands separators and no decimals, smaller ones with 4 significant
// digits.
func formatNumber(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return strconv.FormatFloat(v, 'f', -1, 64)
	case math.Abs(v) >= 100 || v == math.Trunc(v):
		return groupThousands(strconv.FormatFloat(math.Round(v), 'f', 0, 64))
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

func groupThousands(s string) string {
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return sign + b.String()
}

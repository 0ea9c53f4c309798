package berth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Resource names a resource quota is kept in.
type Resource string

const (
	// ResourceGPU is counted in thousandths of a GPU (or of a MIG slice, for a
	// MIG flavor), so fractional GPUs add up exactly.
	ResourceGPU Resource = "gpu"
	// ResourceCPU is counted in millicores.
	ResourceCPU Resource = "cpu"
	// ResourceMemory is counted in bytes.
	ResourceMemory Resource = "memory"
)

// Resources lists the resources in the order output shows them.
var ResourceNames = []Resource{ResourceGPU, ResourceCPU, ResourceMemory}

// Quantity is a Kubernetes-style quantity ("500m", "16Gi", 4), kept as the
// text the user wrote and its value in thousandths.
type Quantity struct {
	text  string
	milli int64
}

// ParseQuantity parses "500m", "16Gi", "1.5" or "4".
func ParseQuantity(s string) (Quantity, error) {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return Quantity{}, fmt.Errorf("quantity %q: %w", s, err)
	}
	return Quantity{text: s, milli: q.MilliValue()}, nil
}

// MustQuantity is ParseQuantity for constants in tests and builders.
func MustQuantity(s string) Quantity {
	q, err := ParseQuantity(s)
	if err != nil {
		panic(err)
	}
	return q
}

// MilliQuantity is a quantity of n thousandths.
func MilliQuantity(n int64) Quantity { return Quantity{milli: n} }

// Milli is the value in thousandths (millicores for cpu, thousandths of a
// GPU for gpu, thousandths of a byte for memory).
func (q Quantity) Milli() int64 { return q.milli }

// Value is the value rounded up to a whole unit (bytes for memory).
func (q Quantity) Value() int64 { return (q.milli + 999) / 1000 }

// IsZero reports whether q is zero.
func (q Quantity) IsZero() bool { return q.milli == 0 }

// String is the text the user wrote, or a canonical form.
func (q Quantity) String() string {
	if q.text != "" {
		return q.text
	}
	if q.milli%1000 == 0 {
		return strconv.FormatInt(q.milli/1000, 10)
	}
	return strconv.FormatInt(q.milli, 10) + "m"
}

// MarshalJSON writes the quantity as a string.
func (q Quantity) MarshalJSON() ([]byte, error) { return json.Marshal(q.String()) }

// UnmarshalJSON accepts a JSON number or string.
func (q *Quantity) UnmarshalJSON(b []byte) error {
	var s string
	if len(b) > 1 && b[0] == '"' && b[len(b)-1] == '"' && !bytes.ContainsAny(b[1:len(b)-1], `"\\`) {
		s = string(b[1 : len(b)-1]) // no escapes: the usual "16Gi", without a decoder
	} else if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	} else {
		s = string(b)
	}
	v, err := ParseQuantity(s)
	if err != nil {
		return err
	}
	*q = v
	return nil
}

// Amount converts a resource's quantity into the unit quotas are kept in
// for that resource: thousandths for gpu and cpu, bytes for memory.
func Amount(r Resource, q Quantity) int64 {
	if r == ResourceMemory {
		return q.Value()
	}
	return q.Milli()
}

// FormatAmount prints an amount of a resource for people: GPUs as a number
// ("8", "2.5"); cpu as Kubernetes writes it, whole cores ("4") or else
// millicores ("500m", as a fraction of a core is written); memory in the
// unit it was most likely written in ("16Gi", "1G").
func FormatAmount(r Resource, n int64) string {
	switch r {
	case ResourceMemory:
		return formatBytes(n)
	case ResourceCPU:
		if n%1000 != 0 {
			return strconv.FormatInt(n, 10) + "m"
		}
		return formatMilli(n)
	default:
		return formatMilli(n)
	}
}

func formatMilli(n int64) string {
	neg := n < 0
	if neg {
		n = -n
	}
	s := strconv.FormatInt(n/1000, 10)
	if frac := n % 1000; frac != 0 {
		f := fmt.Sprintf("%03d", frac)
		for f[len(f)-1] == '0' {
			f = f[:len(f)-1]
		}
		s += "." + f
	}
	if neg {
		s = "-" + s
	}
	return s
}

// formatBytes prints an amount of memory in the unit it was most likely
// written in where that is exact: a binary multiple as it is ("16Gi"), a
// decimal one as it is ("1G", "500M"), and other amounts to one decimal of
// the largest binary unit ("23.5Gi").
func formatBytes(n int64) string {
	neg := n < 0
	if neg {
		n = -n
	}
	s := bytesText(n)
	if neg {
		s = "-" + s
	}
	return s
}

func bytesText(n int64) string {
	units := []string{"", "Ki", "Mi", "Gi", "Ti", "Pi"}
	i, m := 0, n
	for i < len(units)-1 && m >= 1024 && m%1024 == 0 {
		m /= 1024
		i++
	}
	if m < 1024 || i == len(units)-1 {
		return strconv.FormatInt(m, 10) + units[i]
	}
	// Not a small binary multiple: a decimal one, where it is exact.
	if n%1000 == 0 {
		dec := []string{"", "k", "M", "G", "T", "P", "E"}
		j, d := 0, n
		for j < len(dec)-1 && d%1000 == 0 {
			d /= 1000
			j++
		}
		return strconv.FormatInt(d, 10) + dec[j]
	}
	f := float64(m)
	for i < len(units)-1 && f >= 1024 {
		f /= 1024
		i++
	}
	return strconv.FormatFloat(f, 'f', 1, 64) + units[i]
}

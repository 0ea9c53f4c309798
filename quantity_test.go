package berth_test

import (
	"testing"

	"github.com/berth-gpu/berth"
)

// TestFormatAmountKeepsTheUnitWritten: an amount of memory reads in the
// unit it was written in where that is exact (a quota of "1G" is not
// "953.7Mi"), and to one decimal of a binary unit where nothing is exact;
// a fraction of a cpu reads in millicores, as it is written ("500m", not
// "0.5").
func TestFormatAmountKeepsTheUnitWritten(t *testing.T) {
	for _, tc := range []struct {
		written string
		want    string
	}{
		{"16Gi", "16Gi"},
		{"1G", "1G"},
		{"500M", "500M"},
		{"1.5G", "1500M"},
		{"1536Mi", "1.5Gi"},
		{"512Mi", "512Mi"},
		{"2048k", "2048k"},
		{"1000", "1000"},
		{"0", "0"},
		{"1Ti", "1Ti"},
		{"1000000001", "953.7Mi"},
	} {
		q := berth.MustQuantity(tc.written)
		if got := berth.FormatAmount(berth.ResourceMemory, berth.Amount(berth.ResourceMemory, q)); got != tc.want {
			t.Errorf("%s of memory reads %q, want %q", tc.written, got, tc.want)
		}
	}
	if got := berth.FormatAmount(berth.ResourceMemory, -berth.Amount(berth.ResourceMemory, berth.MustQuantity("1G"))); got != "-1G" {
		t.Errorf("-1G reads %q", got)
	}
	for _, tc := range []struct {
		r    berth.Resource
		q    string
		want string
	}{
		{berth.ResourceCPU, "500m", "500m"},
		{berth.ResourceCPU, "1500m", "1500m"},
		{berth.ResourceCPU, "0.25", "250m"},
		{berth.ResourceCPU, "4", "4"},
		{berth.ResourceCPU, "4000m", "4"},
		{berth.ResourceGPU, "2.5", "2.5"},
	} {
		if got := berth.FormatAmount(tc.r, berth.Amount(tc.r, berth.MustQuantity(tc.q))); got != tc.want {
			t.Errorf("%s of %s reads %q, want %q", tc.q, tc.r, got, tc.want)
		}
	}
}

func TestPriorityText(t *testing.T) {
	if got := berth.PriorityText("production", 1000); got != "production (1000)" {
		t.Errorf("got %q", got)
	}
	if got := berth.PriorityText("", 7); got != "7" {
		t.Errorf("a priority no tier has: got %q", got)
	}
}

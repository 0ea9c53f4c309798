package sim

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

var rowErr = regexp.MustCompile(`\.csv:[0-9]`)

const podHeader = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"

func TestReadPods(t *testing.T) {
	in := podHeader +
		"p0,12000,16384,1,1000,,LS,Running,0,100,0\n" +
		"p1,6000,12288,1,460,,BE,Pending,5,9,\n" +
		"p2,88000,0,8,1000,V100M32|V100M16,LS,Succeeded,7,70,8\n" +
		"p3,4000,1024,0,0,,BE,Failed,9,10,9\n"
	pods, err := ReadPods("pods.csv", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != 4 {
		t.Fatalf("read %d pods, want 4", len(pods))
	}
	p1 := pods[1]
	if !p1.Fractional() || p1.GPURequest() != 460 || p1.Scheduled != -1 || p1.QoS != "BE" {
		t.Errorf("p1: %+v", p1)
	}
	p2 := pods[2]
	if p2.GPURequest() != 8000 || p2.Fractional() || strings.Join(p2.GPUSpec, "|") != "V100M16|V100M32" {
		t.Errorf("p2: %+v", p2)
	}
	if pods[3].GPURequest() != 0 {
		t.Errorf("p3 asks for %d GPU thousandths, want none", pods[3].GPURequest())
	}
}

func TestReadErrors(t *testing.T) {
	const nodeHeader = "sn,cpu_milli,memory_mib,gpu,model\n"
	good := "p0,12000,16384,1,1000,,LS,Running,0,100,0\n"
	tests := []struct {
		name, in, want string
		nodes          bool
	}{
		{"not an integer", podHeader + good + "p1,12k,16384,1,1000,,LS,Running,0,100,0\n", `f.csv:3: cpu_milli "12k" is not an integer`, false},
		{"negative", podHeader + "p1,1,-5,1,1000,,LS,Running,0,100,0\n", "f.csv:2: memory_mib -5 is negative", false},
		{"empty", podHeader + "p1,,5,1,1000,,LS,Running,0,100,0\n", "f.csv:2: cpu_milli is empty", false},
		{"share above a GPU", podHeader + "p1,1,5,1,1500,,LS,Running,0,100,0\n", "f.csv:2: gpu_milli 1500: want 1 to 1000", false},
		{"share of several GPUs", podHeader + "p1,1,5,2,500,,LS,Running,0,100,0\n", "f.csv:2: gpu_milli 500 with num_gpu 2", false},
		{"deleted before created", podHeader + "p1,1,5,1,500,,LS,Running,10,5,\n", "f.csv:2: deletion_time 5 is before creation_time 10", false},
		{"scheduled after deleted", podHeader + "p1,1,5,1,500,,LS,Running,0,5,6\n", "f.csv:2: scheduled_time 6 is outside", false},
		{"twice", podHeader + good + good, "f.csv:3: pod p0 is listed twice (first on line 2)", false},
		{"short row", podHeader + good + "p1,1,5\n", "f.csv:3: wrong number of fields", false},
		{"missing column", "name,cpu_milli\np0,1\n", "f.csv:1: header lacks column memory_mib", false},
		{"no rows", podHeader, "f.csv: no pods", false},
		{"node gpu", nodeHeader + "n0,64000,262144,two,P100\n", `f.csv:2: gpu "two" is not an integer`, true},
		{"node twice", nodeHeader + "n0,1,1,2,P100\nn1,1,1,2,P100\nn0,1,1,2,P100\n", "f.csv:4: node n0 is listed twice (first on line 2)", true},
		{"quoted newline counts", nodeHeader + "\"n\n0\",1,1,2,P100\nn1,x,1,2,P100\n", `f.csv:4: cpu_milli "x" is not an integer`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.nodes {
				_, err = ReadNodes("f.csv", strings.NewReader(tt.in))
			} else {
				_, err = ReadPods("f.csv", strings.NewReader(tt.in))
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error starting %q", err, tt.want)
			}
			var re *RowError
			if rowErr.MatchString(tt.want) && !errors.As(err, &re) {
				t.Errorf("%v is not a *RowError", err)
			}
		})
	}
}

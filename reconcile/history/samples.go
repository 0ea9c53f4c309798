package history

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DeviceSample is one reading of one GPU (or MIG device): its busy and
// memory percentages, and how many thousandths of it berth had given to
// runs (allocation).
type DeviceSample struct {
	Cluster string `json:"cluster"`
	// Device names it on its node: "node/0", "node/0/mig-1".
	Device      string `json:"device"`
	Utilization int    `json:"utilization"` // percent; -1 unknown
	Memory      int    `json:"memory"`      // percent; -1 unknown
	Allocated   int    `json:"allocated"`   // thousandths of the device given to runs
}

// Point is a device's readings averaged over a minute or an hour.
type Point struct {
	Time time.Time `json:"time"`
	// Utilization and Memory are averages of the known readings (-1: none
	// known); Allocated the average allocation, in thousandths.
	Utilization float64 `json:"utilization"`
	Memory      float64 `json:"memory"`
	Allocated   float64 `json:"allocated"`
}

// agg is a stored bucket of samples: sums and counts, so that adding a
// sample to a minute or an hour needs no other reading.
type agg struct {
	UtilSum, MemSum, AllocSum int64
	UtilN, MemN, N            int64
}

func (a agg) point(t time.Time) Point {
	p := Point{Time: t, Utilization: -1, Memory: -1}
	if a.UtilN > 0 {
		p.Utilization = float64(a.UtilSum) / float64(a.UtilN)
	}
	if a.MemN > 0 {
		p.Memory = float64(a.MemSum) / float64(a.MemN)
	}
	if a.N > 0 {
		p.Allocated = float64(a.AllocSum) / float64(a.N)
	}
	return p
}

func sampleKey(cluster, device string, t time.Time) []byte {
	k := []byte(cluster + "\x00" + device + "\x00")
	return binary.BigEndian.AppendUint64(k, uint64(t.Unix()))
}

// Sample adds readings taken at now: to the device's minute (kept two
// days) and its hour (kept for the retention). Downsampling is done as
// they are written, so nothing is read back to thin them later.
func (s *Store) Sample(now time.Time, samples []DeviceSample) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, sm := range samples {
			for _, lvl := range []struct {
				bucket []byte
				step   time.Duration
			}{{bucketMinutes, time.Minute}, {bucketHours, time.Hour}} {
				b := tx.Bucket(lvl.bucket)
				k := sampleKey(sm.Cluster, sm.Device, now.UTC().Truncate(lvl.step))
				var a agg
				if v := b.Get(k); v != nil {
					_ = json.Unmarshal(v, &a) // an unreadable bucket starts again
				}
				if sm.Utilization >= 0 {
					a.UtilSum += int64(sm.Utilization)
					a.UtilN++
				}
				if sm.Memory >= 0 {
					a.MemSum += int64(sm.Memory)
					a.MemN++
				}
				a.AllocSum += int64(sm.Allocated)
				a.N++
				v, err := json.Marshal(a)
				if err != nil {
					return err
				}
				if err := b.Put(k, v); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("history: samples: %w", err)
	}
	return nil
}

// Series is a device's points from since on: per minute when since is
// within two days, else per hour.
func (s *Store) Series(cluster, device string, since, now time.Time) ([]Point, error) {
	bucket := bucketMinutes
	if now.Sub(since) > 48*time.Hour {
		bucket = bucketHours
	}
	prefix := []byte(cluster + "\x00" + device + "\x00")
	var out []Point
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(sampleKey(cluster, device, since)); k != nil && len(k) == len(prefix)+8 && string(k[:len(prefix)]) == string(prefix); k, v = c.Next() {
			var a agg
			if json.Unmarshal(v, &a) != nil {
				continue
			}
			out = append(out, a.point(time.Unix(int64(binary.BigEndian.Uint64(k[len(prefix):])), 0).UTC()))
		}
		return nil
	})
	return out, err
}

// deleteSamples deletes the bucket's samples older than cut, of every
// device.
func deleteSamples(b *bolt.Bucket, cut time.Time) error {
	c := b.Cursor()
	var old [][]byte
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if len(k) >= 8 && int64(binary.BigEndian.Uint64(k[len(k)-8:])) < cut.Unix() {
			old = append(old, append([]byte(nil), k...))
		}
	}
	for _, k := range old {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Device names a GPU of a node as the samples do: "box/0".
func Device(node string, gpu int) string { return node + "/" + strconv.Itoa(gpu) }

package schedule

// NotScheduled exposes the workload fields a Cache does not compare.
var NotScheduled = notScheduled

// SetChunkMin sets the fewest items inChunks splits, until restore.
func SetChunkMin(n int) (restore func()) {
	old := chunkMin
	chunkMin = n
	return func() { chunkMin = old }
}

package broker

import "syscall"

// diskSpace reports the total and free bytes of the filesystem holding dir.
func diskSpace(dir string) (total, free int64) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return -1, -1
	}
	return int64(st.Blocks) * st.Bsize, int64(st.Bavail) * st.Bsize
}

// Package datasource finds a node's user-data for prebake-agent without
// cloud-init: the NoCloud seed (a volume labelled cidata), an OpenStack
// config drive (labelled config-2), EC2's instance metadata service (IMDSv2)
// and a local file. The volumes are read directly from the block device
// (ISO 9660 with or without Joliet, or FAT12/16/32), so nothing is mounted.
package datasource

import (
	"context"
	"errors"
)

// Source is one place user-data can come from.
type Source interface {
	// Name is a short lowercase name for log lines ("nocloud").
	Name() string
	// UserData returns the user-data. ErrNotFound means this datasource is
	// not present on the machine; ErrNoUserData means it is, without
	// user-data.
	UserData(ctx context.Context) ([]byte, error)
}

// Sentinel errors.
var (
	ErrNotFound   = errors.New("datasource not found")
	ErrNoUserData = errors.New("no user-data")
	ErrFormat     = errors.New("unreadable volume")
)

// MaxSize caps a user-data file: far above every provider's limit.
const MaxSize = 16 << 20

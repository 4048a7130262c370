//go:build tools

// Package tools pins the Fabric CA commands the HDX network builds. Nothing here is compiled into HDX.
package tools

import (
	_ "github.com/hyperledger/fabric-ca/cmd/fabric-ca-client"
	_ "github.com/hyperledger/fabric-ca/cmd/fabric-ca-server"
)

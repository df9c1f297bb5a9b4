package api

import _ "embed"

//go:embed openapi.yaml
var openapi []byte

// OpenAPIDocument is the OpenAPI 3.1 description of the API, served at
// /openapi.yaml.
func OpenAPIDocument() []byte { return openapi }

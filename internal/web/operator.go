package web

import "net/http"

func (s *Server) routesOperator(mux *http.ServeMux) {}

package web

import "net/http"

func (s *Server) routesEvents(mux *http.ServeMux) {}

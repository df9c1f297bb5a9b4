package web

import "net/http"

func (s *Server) routesChannels(mux *http.ServeMux) {}

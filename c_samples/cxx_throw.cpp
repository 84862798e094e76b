// An exception nobody catches: std::terminate -> abort.
#include <stdexcept>
#include <string>

namespace store {

struct Config {
	std::string path;
};

__attribute__((noipa)) void load_config(const Config &cfg)
{
	throw std::runtime_error("config file not found: " + cfg.path);
}

}  // namespace store

int main()
{
	store::Config cfg{"/etc/app.conf"};
	store::load_config(cfg);
	return 0;
}

	/* ---- ADMIN_TOKEN ----
	 * The prompt for the operator's token, the same on /dashboard and
	 * /dashboard/calls: the Makefile puts this file into both pages' one
	 * script, in place of its include line, as they are built into the
	 * binary, as token_prompt.html is put into their markup.
	 * tokenPrompt(onAsk, onGive) works that #auth and returns the prompt:
	 * .headers() for a request, .ask(refused) when one was answered 401
	 * (refused: it carried a token, which is forgotten) and .asking until
	 * a token is given.  The token is kept in sessionStorage (this tab only, gone when
	 * it closes) under one key, so one given on either page holds for the
	 * other.  onAsk(refused) and onGive() are the page's own part: what it
	 * says while it waits, how it loads again. */
	function tokenPrompt(onAsk, onGive) {
		var KEY = 'voxrelay-admin-token';
		var box = $('auth'), field = $('auth-token'), msg = $('auth-msg');
		var p = { asking: false };

		function stored() {
			try { return sessionStorage.getItem(KEY) || ''; } catch (e) { return ''; }
		}
		function give() {
			var t = field.value.trim();
			if (!t) return;
			try { sessionStorage.setItem(KEY, t); } catch (e) { /* private mode */ }
			field.value = '';
			box.hidden = true;
			box.dataset.state = 'given';
			p.asking = false;
			onGive();
		}
		p.headers = function () {
			var t = stored();
			return t ? { Authorization: 'Bearer ' + t } : {};
		};
		p.ask = function (refused) {
			p.asking = true;
			try { sessionStorage.removeItem(KEY); } catch (e) { /* private mode */ }
			box.hidden = false;
			box.dataset.state = refused ? 'refused' : 'needed';
			msg.textContent = refused ? 'that token was refused' : '';
			onAsk(refused);
			field.focus();
		};
		$('auth-submit').addEventListener('click', give);
		field.addEventListener('keydown', function (e) {
			if (e.key === 'Enter') give();
		});
		return p;
	}

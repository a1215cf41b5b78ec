import { render } from 'preact';
import { App } from './app.js';
import { SignIn } from './signin.js';
import './style.css';

const root = document.getElementById('app')!;
const onSignIn = /\/console\/signin(\.html)?$/.test(location.pathname);
render(onSignIn ? <SignIn /> : <App />, root);
